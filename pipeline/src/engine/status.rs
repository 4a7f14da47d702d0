//! The engine's shared status: what `/readyz`, the instance directory and the availability
//! query read while the engine runs (atomics and small locked sets, never the engine's lock).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::rocks_store::StateDb;

/// Shared view of the engine for health checks, metrics and queries.
#[derive(Debug, Default)]
pub struct EngineStatus {
    /// Tasks assigned and ready.
    pub ready_tasks: AtomicUsize,
    /// Tasks restoring.
    pub restoring_tasks: AtomicUsize,
    /// True once the consumer got its first assignment.
    pub assigned: AtomicBool,
    /// Names of the tasks this process owns and has opened (`inventory-3`, …).
    pub owned: Mutex<BTreeSet<String>>,
    /// Names of the tasks this process was assigned and is still opening (restoring their
    /// stores from their changelogs, or about to resume).
    pub opening: Mutex<BTreeSet<String>>,
    /// Grows on every change of `owned` or `opening` (the instance directory re-announces).
    pub changes: AtomicU64,
    /// The process's RocksDB, once open (read committed state for queries).
    pub db: OnceLock<StateDb>,
}

impl EngineStatus {
    /// Whether this process owns the task `name` and has finished opening it.
    pub fn owns(&self, name: &str) -> bool {
        self.owned.lock().map(|o| o.contains(name)).unwrap_or(false)
    }

    /// The tasks this process holds: `(name, opening)`, opened ones and ones still opening.
    pub fn held_tasks(&self) -> Vec<(String, bool)> {
        let mut held: Vec<(String, bool)> = self
            .owned
            .lock()
            .map(|o| o.iter().map(|t| (t.clone(), false)).collect())
            .unwrap_or_default();
        if let Ok(r) = self.opening.lock() {
            held.extend(r.iter().map(|t| (t.clone(), true)));
        }
        held
    }

    pub(super) fn set_owned(&self, name: &str, owned: bool) {
        Self::set_member(&self.owned, name, owned);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether this process is opening the task `name` (assigned, not ready yet).
    pub fn is_opening(&self, name: &str) -> bool {
        self.opening
            .lock()
            .map(|o| o.contains(name))
            .unwrap_or(false)
    }

    pub(super) fn set_opening(&self, name: &str, opening: bool) {
        Self::set_member(&self.opening, name, opening);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    fn set_member(set: &Mutex<BTreeSet<String>>, name: &str, member: bool) {
        if let Ok(mut o) = set.lock() {
            if member {
                o.insert(name.to_string());
            } else {
                o.remove(name);
            }
        }
    }
}
