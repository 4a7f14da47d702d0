//! `shelfsync push`: the marketplace push sink (DESIGN §5).
//!
//! It reads `retail.channel.availability` in its own consumer group
//! (`<application_id>-push`) and sends each channel's quantities to its marketplace.
//!
//! ## Layout, file by file
//!
//! - `mod.rs` (this file): [`run`], the consumer loop, rebalance callbacks and commits;
//! - [`config`]: each channel's `[channels.push]` table resolved, credentials read;
//! - [`queue`]: per channel, a coalescing queue keeping only the newest version per SKU, with
//!   stock-outs served first;
//! - [`tracker`]: per partition, the offsets still waiting for the marketplace;
//! - [`recent`]: a map bounded to the keys used last (delivered versions, Shopify's item ids);
//! - [`sink`]: [`HttpPushSink`], which ties them together: takes batches from the queues, marks
//!   them in flight, applies each update's result (acknowledge, retry with backoff, dead-letter);
//! - `dead_letter.rs`: the dead-letter records and their headers;
//! - `delivery.rs`: the shared delivery loop, written once for every marketplace: reads the
//!   credentials and sends the requests a marketplace asks for, handing each answer back;
//! - `feed.rs`: the bulk-feed flow, written once (submit → poll until final → report), for the
//!   marketplaces that have a feed (Amazon, Walmart);
//! - `api.rs`: one channel's HTTP side: its limiter (token bucket plus pauses), one more per
//!   rate-limited operation of its marketplace (the published usage plans), and one request
//!   sent and classified (accepted, worth retrying, refused for good);
//! - [`revisions`]: the daily revision budget of a marketplace that limits revisions per listing
//!   (eBay, 250 a day): spent per accepted update, an update past it held until the next day;
//! - [`bucket`]: the token bucket (`rate_per_sec`, `burst`) that every request passes;
//! - [`retry`]: exponential backoff with jitter and `Retry-After` parsing;
//! - [`marketplaces`]: one file per marketplace API behind the `Marketplace` trait, pure code
//!   only (requests built from a batch, answers read into a result per update, unit-tested
//!   beside it): `shopify.rs`, `amazon.rs`, `walmart.rs`, `ebay.rs` and `webhook.rs` (a signed
//!   generic webhook). Adding a marketplace is one file there plus one line in its `for_kind`.
//!
//! All I/O (HTTP calls, rate limiting, waiting, retries) is in `delivery.rs`, `feed.rs`,
//! `api.rs` and [`sink`]; nothing in [`marketplaces`] sends or waits.
//!
//! ## Delivery and commits
//!
//! An input offset is committed only when every update read at or below it was accepted by the
//! marketplace or dead-lettered (and the dead letter acknowledged by the broker). An update
//! replaced by a newer version of its SKU counts as done when the newer one is. A crash
//! therefore replays updates, never loses one.
//!
//! ## Never an older number over a newer one
//!
//! - Only the newest version of a SKU waits in a queue, and a version at or below one already
//!   delivered or in flight is never queued.
//! - Two requests never carry the same SKU at once, so a retried older update cannot overtake a
//!   newer one; a failed update that a newer one replaced meanwhile is dropped.
//! - After an assignment, the replayed range up to the partition's end is read and coalesced
//!   before anything of it is sent (see [`tracker`]): the newest version in the range is at
//!   least anything a previous owner delivered.
//! - On revocation, queued updates of the partition are dropped and the callback waits (up to
//!   [`REVOKE_WAIT`]) for its requests in flight before committing, so the next owner does not
//!   race them.
//!
//! ## Memory: bounded, with backpressure
//!
//! What the sink keeps grows with the SKUs waiting, not with the topic's backlog or the
//! catalog (see [`sink::Bounds`], set by `--queue-capacity` and `--delivered-capacity`):
//!
//! - per channel at most `queue_capacity` SKUs pending (queued or in flight): when a channel
//!   reaches it, or the partitions hold `2 × queue_capacity × channels` records read but not
//!   yet done, the consumer pauses its partitions (librdkafka `pause`) and resumes them once
//!   every channel is back at three quarters. The lag stays on the broker, not in memory;
//! - per channel at most `delivered_capacity` delivered versions ([`recent::RecentMap`]);
//! - per Shopify channel at most [`marketplaces::shopify::SHOPIFY_STATE_CAPACITY`] SKUs'
//!   inventory item ids and compare values (a forgotten one is looked up again);
//! - librdkafka's prefetch is capped by `queued.max.messages.kbytes` (16 MiB per partition by
//!   default, see [`kafka::consumer_config`]).
//!
//! A pending SKU costs about 1 KiB of resident memory all told (its queue entry with SKU, event
//! id, covers and order key, its held offset, the allocator's overhead): with the defaults, one
//! channel stalled behind 1 000 000 distinct SKUs kept the process at 134 MiB resident, and at
//! 195 MiB while delivering them (the memory test in `tests/tests/push_sink.rs` holds it under
//! 256 MiB). The exception is the catch-up after an assignment: the replayed range is coalesced
//! whole before anything of it is sent (it is not paused), so it holds one entry per distinct
//! SKU in it.
//!
//! ## Stopping
//!
//! On shutdown the loop stops reading; the senders get up to half of
//! [`PushOptions::shutdown_timeout`] for their requests in flight, the final commit the rest
//! (dead letters acknowledged, then an asynchronous commit confirmed by asking the broker).
//! Leaving the group runs on its own thread and is given what is left, at least 2 s. During a
//! broker outage the process therefore exits after the timeout (plus those 2 s) and logs per
//! partition what it read past its last commit: the next owner reads and pushes it again.
//!
//! Every request carries the idempotency keys `channel|sku|version` of its updates
//! (`X-Shelfsync-Update-Keys`), so a marketplace (or the test simulator) can check the order.

mod api;
pub mod bucket;
pub mod config;
mod dead_letter;
mod delivery;
mod feed;
pub mod marketplaces;
pub mod queue;
pub mod recent;
pub mod retry;
pub mod revisions;
pub mod sink;
pub mod tracker;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_topology::{TopicId, Topology};
use tracing::{debug, error, info, warn};

pub use config::{ChannelConfig, Secret};
pub use sink::HttpPushSink;

use crate::engine::EngineStatus;
use crate::error::{Error, Result};
use crate::kafka::{self, KafkaProducer};
use crate::metrics as m;

/// The `stage` of the sink's dead letters and DLQ metric.
pub const STAGE: &str = "push";
/// Dead-letter header: the channel whose marketplace refused the update.
pub const DLQ_CHANNEL: &str = "shelfsync-dlq-channel";
/// Dead-letter header: the marketplace's HTTP status.
pub const DLQ_HTTP_STATUS: &str = "shelfsync-dlq-http-status";
/// Dead-letter header: the marketplace's response body (at most 4 KiB).
pub const DLQ_HTTP_BODY: &str = "shelfsync-dlq-http-body";
/// The default listen address of `shelfsync push --http-addr` (`run` uses 9464).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9465";
/// Suffix of the sink's consumer group: `<application_id>-push`.
pub const GROUP_SUFFIX: &str = "-push";
/// Longest a revocation waits for the partition's requests in flight.
pub const REVOKE_WAIT: Duration = Duration::from_secs(30);
/// Default of [`PushOptions::shutdown_timeout`].
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the consumer loop waits for the broker to acknowledge dead letters before a commit;
/// when it has not (an outage), the commit waits for the next interval.
const COMMIT_FLUSH_WAIT: Duration = Duration::from_secs(1);
/// How long a broker request at assignment is retried before the process gives up.
const RETRY_BUDGET: Duration = Duration::from_secs(300);

/// Runtime options of `shelfsync push`.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Set to stop: finish the requests in flight, commit, leave the group.
    pub shutdown: Arc<AtomicBool>,
    /// How often acknowledged offsets are committed.
    pub commit_interval: Duration,
    /// What the sink may keep in memory before it pauses reading.
    pub bounds: sink::Bounds,
    /// How long a shutdown may take: up to half of it for the marketplace requests in flight,
    /// the rest for the broker to acknowledge dead letters and commit. What is not committed by
    /// then is logged and read again by the next owner (safe: every marketplace write is
    /// idempotent and versioned).
    pub shutdown_timeout: Duration,
}

/// The consumer group id of the sink.
pub fn group_id(topology: &Topology) -> String {
    format!("{}{GROUP_SUFFIX}", topology.application_id)
}

struct PushContext {
    sink: Arc<HttpPushSink>,
    topic: String,
    status: Arc<EngineStatus>,
    /// Set by every rebalance: the consumer loop applies its pauses again.
    rebalanced: AtomicBool,
    /// Set once the shutdown's own commit is done: the revocation of leaving the group
    /// neither waits nor commits (the shutdown deadline is spent or its commit went through).
    closing: AtomicBool,
}

impl ClientContext for PushContext {
    fn error(&self, error: KafkaError, reason: &str) {
        kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for PushContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.rebalanced.store(true, Ordering::SeqCst);
            metrics::counter!(m::REBALANCES, "kind" => "revoke").increment(1);
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            for &p in &partitions {
                self.sink.revoke_begin(p);
            }
            if self.closing.load(Ordering::SeqCst) {
                for &p in &partitions {
                    self.sink.revoke_end(p);
                    self.status.set_owned_push(p, false);
                }
                return;
            }
            let deadline = Instant::now() + REVOKE_WAIT;
            while partitions.iter().any(|&p| self.sink.in_flight_on(p)) {
                if Instant::now() > deadline {
                    warn!(topic = %self.topic, ?partitions, "requests of revoked partitions still in flight after the wait; the next owner may send the same updates again");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut commit = TopicPartitionList::new();
            for &p in &partitions {
                if let Some(offset) = self.sink.revoke_end(p) {
                    let _ = commit.add_partition_offset(&self.topic, p, Offset::Offset(offset));
                }
                self.status.set_owned_push(p, false);
            }
            if commit.count() > 0 {
                match self.sink.flush_dead_letters(REVOKE_WAIT) {
                    Ok(true) => {
                        if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                            warn!(error = %e, "offset commit at revocation failed; the next owner replays a little more");
                        }
                    }
                    Ok(false) => warn!(wait_s = REVOKE_WAIT.as_secs(), "dead letters not acknowledged by the broker in time; not committing the revoked partitions (the next owner replays them)"),
                    Err(e) => error!(error = %e, "not committing the revoked partitions"),
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.rebalanced.store(true, Ordering::SeqCst);
                metrics::counter!(m::REBALANCES, "kind" => "assign").increment(1);
                for e in tpl.elements() {
                    let p = e.partition();
                    let catch_up_to = match replay_end(consumer, &self.topic, p) {
                        Ok(end) => end,
                        Err(err) => {
                            // Catch up to "whatever is there when we get to it": read until EOF.
                            warn!(error = %err, partition = p, "cannot read the partition's offsets; catching up until its end");
                            Some(i64::MAX)
                        }
                    };
                    self.sink.assign(p, catch_up_to);
                    self.status.set_owned_push(p, true);
                }
                self.status.assigned.store(true, Ordering::SeqCst);
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }

    /// Logs a failed commit (commits are asynchronous, see [`commit`]); the next commit, or
    /// the shutdown's, which commits every partition again, covers it.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            warn!(error = %e, partitions = offsets.count(), "offset commit failed; the next one covers it");
        }
    }
}

/// The end offset to catch up to when the committed offset is below it, else `None`.
fn replay_end<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let (low, high) = kafka::retry("fetch watermarks", RETRY_BUDGET, || {
        Ok(consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?)
    })?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = kafka::retry("committed offsets", RETRY_BUDGET, || {
        Ok(consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))?)
    })?;
    let from = committed
        .elements()
        .first()
        .and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .unwrap_or(low)
        .max(low);
    Ok((from < high).then_some(high))
}

impl EngineStatus {
    fn set_owned_push(&self, partition: i32, owned: bool) {
        if let Ok(mut o) = self.owned.lock() {
            let name = format!("{STAGE}-{partition}");
            if owned {
                o.insert(name);
            } else {
                o.remove(&name);
            }
            self.ready_tasks.store(o.len(), Ordering::SeqCst);
        }
    }
}

/// Runs the push sink until `options.shutdown` is set or a fatal error occurs.
///
/// # Errors
/// [`Error::Config`] for a topology that cannot be pushed (missing marketplace settings or
/// credentials); [`Error::Kafka`]/[`Error::Topics`] when the broker fails for good. Marketplace
/// failures never stop it: they are retried or dead-lettered.
pub fn run(topology: Arc<Topology>, options: PushOptions, status: Arc<EngineStatus>) -> Result<()> {
    if let Some(url) = &topology.kafka.schema_registry_url {
        return Err(Error::Config(format!(
            "kafka.schema_registry_url = {url:?}: registry-backed Confluent framing is not supported yet; \
             remove it to use Avro single-object encoding"
        )));
    }
    let configs = ChannelConfig::all(&topology, &|k| std::env::var(k).ok())?;
    for c in &configs {
        info!(channel = %c.name, kind = c.kind.as_str(), endpoint = %c.endpoint, rate_per_sec = c.rate_per_sec, burst = c.burst, batch_size = c.batch_size, max_in_flight = c.max_in_flight, "pushing channel");
    }
    let topic = topology.topic_name(TopicId::Availability);
    let producer = KafkaProducer::new(&topology)?;
    let sink = Arc::new(HttpPushSink::new(
        configs,
        producer,
        topic.clone(),
        topology.topic_name(TopicId::Dlq),
        options.bounds,
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shelfsync-push")
        .enable_all()
        .build()
        .map_err(|e| Error::Bug(format!("push runtime: {e}")))?;
    let senders = runtime.spawn(Arc::clone(&sink).run(options.shutdown_timeout / 2));

    let mut config = kafka::consumer_config(&topology);
    config.set("group.id", group_id(&topology));
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<PushContext> = config.create_with_context(PushContext {
        sink: Arc::clone(&sink),
        topic: topic.clone(),
        status,
        rebalanced: AtomicBool::new(false),
        closing: AtomicBool::new(false),
    })?;
    consumer.subscribe(&[topic.as_str()])?;
    info!(group = %group_id(&topology), topic = %topic, "joined the push consumer group");

    let result = (|| -> Result<()> {
        let mut last_commit = Instant::now();
        let mut pauses = Pauses::default();
        while !options.shutdown.load(Ordering::SeqCst) {
            pauses.apply(&consumer, &sink, &topic);
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Ok(msg)) => {
                    sink.ingest_traced(
                        msg.partition(),
                        msg.offset(),
                        msg.key(),
                        msg.payload(),
                        crate::kafka::trace_headers(&msg),
                    )?;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => sink.caught_up(p),
                Some(Err(e)) => kafka::log_client_error(&e, "poll"),
            }
            if let Some(e) = sink.take_fatal() {
                return Err(e);
            }
            if last_commit.elapsed() >= options.commit_interval {
                last_commit = Instant::now();
                commit(&consumer, &sink, &topic, COMMIT_FLUSH_WAIT, false)?;
            }
        }
        Ok(())
    })();
    let deadline = Instant::now() + options.shutdown_timeout;
    info!(
        timeout_s = options.shutdown_timeout.as_secs_f64(),
        "push stopping: finishing requests in flight, committing, leaving the group"
    );
    sink.stop();
    if runtime.block_on(senders).is_err() {
        warn!("the push senders ended abnormally");
    }
    let (last, committed) = final_commit(&consumer, &sink, &topic, deadline);
    report_uncommitted(&sink, committed.as_ref());
    consumer.context().closing.store(true, Ordering::SeqCst);
    kafka::leave_group(
        consumer,
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2)),
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.and(last)
}

/// The shutdown's commit: dead letters acknowledged and offsets committed before `deadline`,
/// or as much as the broker allowed by then. Returns the offsets the broker says are
/// committed, per tracked partition, or `None` when it could not be asked in time.
fn final_commit(
    consumer: &BaseConsumer<PushContext>,
    sink: &HttpPushSink,
    topic: &str,
    deadline: Instant,
) -> (Result<()>, Option<BTreeMap<i32, i64>>) {
    let left = || deadline.saturating_duration_since(Instant::now());
    let sent = match commit(consumer, sink, topic, left(), true) {
        Ok(points) => points,
        Err(e) => return (Err(e), None),
    };
    let mut tpl = TopicPartitionList::new();
    for p in sink.partitions() {
        tpl.add_partition(topic, p);
    }
    if tpl.count() == 0 {
        return (Ok(()), Some(BTreeMap::new()));
    }
    // The commit is asynchronous: ask the broker until it shows what was sent, or time is up.
    let mut last = None;
    loop {
        // Serves the commit's callback (records polled now are not handled: uncommitted, they
        // are read again).
        let _ = consumer.poll(Duration::ZERO);
        let wait = left();
        if wait.is_zero() {
            break;
        }
        if let Ok(committed) = consumer.committed_offsets(tpl.clone(), wait) {
            let offsets: BTreeMap<i32, i64> = committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect();
            let done = sent
                .iter()
                .all(|(p, o)| offsets.get(p).is_some_and(|c| c >= o));
            last = Some(offsets);
            if done {
                break;
            }
        }
        std::thread::sleep(left().min(Duration::from_millis(100)));
    }
    (Ok(()), last)
}

/// Logs what the shutdown leaves uncommitted, given the offsets the broker reported
/// committed (`None`: it could not be asked): the next owner reads those records again.
fn report_uncommitted(sink: &HttpPushSink, committed: Option<&BTreeMap<i32, i64>>) {
    let mut all = true;
    for (partition, sent, read_up_to) in sink.read_positions() {
        match committed {
            Some(c) if c.get(&partition).is_some_and(|c| *c >= read_up_to) => {}
            Some(c) => {
                all = false;
                warn!(
                    partition,
                    committed = ?c.get(&partition),
                    read_up_to,
                    "not committed at shutdown: the records from the committed offset on are read and pushed again on restart (safe: marketplace writes are idempotent)"
                );
            }
            None => {
                all = false;
                warn!(
                    partition,
                    last_commit_sent = ?sent,
                    read_up_to,
                    "not committed at shutdown (the broker did not answer in time): the records from the group's committed offset on are read and pushed again on restart (safe: marketplace writes are idempotent)"
                );
            }
        }
    }
    if all {
        info!("every offset read is committed");
    }
}

/// The partitions paused for backpressure (see the module page).
#[derive(Debug, Default)]
struct Pauses {
    on: bool,
    paused: BTreeSet<i32>,
}

impl Pauses {
    /// Pauses or resumes partitions as [`HttpPushSink::backpressure`] says; after a rebalance,
    /// resumes what it had paused and pauses again what is still to be paused.
    fn apply(&mut self, consumer: &BaseConsumer<PushContext>, sink: &HttpPushSink, topic: &str) {
        if consumer.context().rebalanced.swap(false, Ordering::SeqCst) {
            let all = std::mem::take(&mut self.paused);
            set_paused(consumer, topic, &all, false);
        }
        let on = sink.backpressure(self.on);
        if on != self.on {
            let (pending, held) = sink.pending();
            if on {
                info!(
                    ?pending,
                    held, "a channel's queue is full; pausing the partitions until it drains"
                );
            } else {
                info!(
                    ?pending,
                    held, "the queues drained; resuming the partitions"
                );
            }
            metrics::gauge!(m::PUSH_PAUSED).set(if on { 1.0 } else { 0.0 });
            self.on = on;
        }
        if !on && self.paused.is_empty() {
            return;
        }
        let want: BTreeSet<i32> = if on {
            sink.pausable().into_iter().collect()
        } else {
            BTreeSet::new()
        };
        if want != self.paused {
            let pause: BTreeSet<i32> = want.difference(&self.paused).copied().collect();
            let resume: BTreeSet<i32> = self.paused.difference(&want).copied().collect();
            set_paused(consumer, topic, &pause, true);
            set_paused(consumer, topic, &resume, false);
            self.paused = want;
        }
    }
}

fn set_paused<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &BTreeSet<i32>,
    pause: bool,
) {
    if partitions.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let result = if pause {
        consumer.pause(&tpl)
    } else {
        consumer.resume(&tpl)
    };
    match result {
        Ok(()) => debug!(?partitions, pause, "partitions paused or resumed"),
        // A partition revoked meanwhile: nothing to pause or resume.
        Err(e) => debug!(error = %e, ?partitions, pause, "pause or resume refused"),
    }
}

/// Commits every partition whose commit point moved (`all`: every partition's, moved or not,
/// as the shutdown does, since an asynchronous commit may have failed unseen), once the broker
/// acknowledged the dead letters (waiting up to `wait` for them; not acknowledged by then,
/// nothing is committed this time). The commit is asynchronous, so a broker outage never blocks the caller; its callback
/// notes it ([`HttpPushSink::committed`]). Returns the points sent for commit.
///
/// # Errors
/// [`Error::Topics`] once the broker refused a dead letter (nothing is committed past it).
fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    sink: &HttpPushSink,
    topic: &str,
    wait: Duration,
    all: bool,
) -> Result<Vec<(i32, i64)>> {
    let points = if all {
        sink.all_commit_points()
    } else {
        sink.commit_points()
    };
    if points.is_empty() {
        return Ok(points);
    }
    if !sink.flush_dead_letters(wait)? {
        debug!("dead letters not acknowledged yet; committing later");
        return Ok(Vec::new());
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &points {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
    }
    match consumer.commit(&tpl, CommitMode::Async) {
        Ok(()) => {
            // Noted when sent, so the same point is not sent again; a commit that fails is
            // logged by the callback and covered by the next one.
            sink.committed(&points);
            Ok(points)
        }
        Err(e) => {
            warn!(error = %e, "offset commit failed; retrying with the next one");
            Ok(Vec::new())
        }
    }
}
