//! A recreated input topic is read again, not skipped (issue 15, item 5).
//!
//! A generated day's first half runs on member A, which stops with its state kept. The three
//! source topics (raw orders, ERP inventory, ERP products) are then deleted and created again,
//! empty: their offsets begin again at 0, below every task's checkpoint. A starts again on the
//! same state dir and the second half of the day arrives on the new topics. Before this issue
//! every new record below the old checkpoints read as a replay and was skipped, and what the
//! stages downstream received carried stamps at offsets they had already passed, so it read as
//! a repeat. Now each source task finds its last record gone, starts a new lineage and reads
//! the new topic from its beginning, keeping its state: every status and availability equals
//! the model of the whole day, and no `event_id` appears twice.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::run_cli;
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 2_020_005;
const EVENTS: usize = 200;
const WAIT: Duration = Duration::from_secs(180);

/// Deletes `topics` and creates every missing topic of the topology again.
fn recreate(s: &Setup, topics: &[String]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let deleted = block_on(admin.delete_topics(&names, &AdminOptions::new()))?;
    for r in deleted {
        if let Err((topic, e)) = r {
            bail!("deleting {topic}: {e}");
        }
    }
    // Deletion finishes in the background: creating the topic again fails until it has.
    let deadline = Instant::now() + Duration::from_secs(60);
    let topology = s.topology_path.to_str().unwrap_or_default().to_string();
    loop {
        match run_cli(
            std::path::Path::new(BIN),
            &["topics", "create", "--topology", &topology],
        ) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("topics create: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs an admin future to completion on this thread (rdkafka's admin futures need no
/// runtime of their own).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[test]
fn a_recreated_source_topic_is_read_again_in_a_new_lineage() -> Result<()> {
    let s = Setup::new(BIN, "recreated", 2)?;
    let day = Day::generate(SEED, EVENTS);
    let half = day.events.len() / 2;
    let (first, whole) = s.models_of_halves(&day.events, half)?;
    s.run_until_model("a", &day.events[..half], &first, WAIT)?;

    let sources: Vec<String> = [
        TopicId::RawOrders,
        TopicId::ErpInventory,
        TopicId::ErpProducts,
    ]
    .into_iter()
    .map(|id| s.topic(id))
    .collect();
    recreate(&s, &sources)?;

    let a2 = shelfsync_tests::kafka_io::PipelineProcess::start(
        std::path::Path::new(BIN),
        &s.topology_path,
        &s.dir.path().join("a"),
        &s.log_path("a2"),
    )?;
    let deadline = Instant::now() + WAIT;
    while a2.log().matches("task opened").count() < 12 {
        ensure!(
            Instant::now() < deadline,
            "A's tasks did not open:\n{}",
            a2.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    s.feed_live(&day.events[half..])?;
    s.wait_for_model(&whole, WAIT, || a2.log_tail())?;
    let recreated = a2.log().matches("the input topic was recreated").count();
    eprintln!("{recreated} source task(s) started a new lineage");
    ensure!(
        recreated >= 1,
        "no task noticed its input topic was recreated:\n{}",
        a2.log_tail()
    );
    std::thread::sleep(Duration::from_secs(2));
    s.no_duplicate_outputs()?;
    a2.stop()?;
    Ok(())
}
