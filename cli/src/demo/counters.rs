//! The engine's own counters (e.g. duplicates dropped, which writes nothing anywhere): a tiny
//! in-process metrics recorder that keeps counters only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The counters the engine registered, by key.
#[derive(Debug, Default)]
pub(super) struct Counters {
    by_key: Mutex<HashMap<metrics::Key, Arc<AtomicU64>>>,
}

impl Counters {
    /// The sum of a counter over all its label sets.
    pub(super) fn total(&self, name: &str) -> u64 {
        self.by_key.lock().map_or(0, |map| {
            map.iter()
                .filter(|(k, _)| k.name() == name)
                .map(|(_, v)| v.load(Ordering::Relaxed))
                .sum()
        })
    }
}

struct CounterRecorder(Arc<Counters>);

impl metrics::Recorder for CounterRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        match self.0.by_key.lock() {
            Ok(mut map) => {
                metrics::Counter::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
            }
            Err(_) => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Installs the counter recorder; `None` when another recorder is already installed.
pub(super) fn install_recorder() -> Option<Arc<Counters>> {
    let counters = Arc::new(Counters::default());
    metrics::set_global_recorder(CounterRecorder(Arc::clone(&counters)))
        .ok()
        .map(|()| counters)
}
