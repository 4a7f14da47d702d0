//! [`HttpPushSink`]: the channels' queues and senders, what is in flight, what was delivered,
//! and the acknowledgement of input offsets.
//!
//! One lock guards the state shared by the consumer thread (which offers updates and commits)
//! and the channel senders (which take batches and complete them); it is never held across an
//! `await` or a Kafka call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shelfsync_schemas::avro;
use shelfsync_schemas::ChannelAvailability;
use tokio::sync::{watch, Notify, Semaphore};
use tracing::{debug, error, info, warn};

use super::api::{Api, Calls, Limiter};
use super::config::ChannelConfig;
use super::dead_letter::DeadLetter;
use super::delivery;
use super::marketplaces::{self, Delivery, ItemResult, Marketplace};
use super::queue::{CoalescingQueue, Cover, Offered, Queued, Update};
use super::recent::RecentMap;
use super::retry::{backoff, Jitter, BACKOFF_BASE, BACKOFF_CAP};
use super::revisions::{RevisionBudget, RevisionLimit};
use super::tracker::PartitionTracker;
use super::STAGE;
use crate::error::{Error, Result};
use crate::kafka::{KafkaProducer, ProduceRecord};
use crate::metrics as m;

/// How much the sink keeps in memory. Every map it holds is bounded by one of these (the
/// catch-up after an assignment excepted, see [`Bounds::queue_capacity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Per channel, most distinct SKUs pending (queued or in flight) before the sink stops
    /// reading: at this many, every assigned partition that is not catching up is paused
    /// until every channel is back at three quarters of it. The queue coalesces by SKU, so
    /// this bounds the queues whatever the backlog on the topic. A partition catching up after
    /// an assignment is not paused (its updates are only sent once it reached the end it had
    /// at assignment), so a replayed range is held whole: it is bounded by the distinct SKUs
    /// in it, not by this.
    pub queue_capacity: usize,
    /// Per channel, most SKUs whose delivered version is remembered ([`RecentMap`]: the ones
    /// delivered most recently). The remembered version only saves sending an update at or
    /// below what the marketplace already has, e.g. a duplicate an upstream replay wrote
    /// again; a SKU forgotten is sent again when such a duplicate comes, and the newer version
    /// that follows it in the replay puts it right.
    pub delivered_capacity: usize,
}

impl Bounds {
    /// Defaults: 100 000 SKUs pending and 200 000 delivered versions per channel.
    pub const DEFAULT: Self = Self {
        queue_capacity: 100_000,
        delivered_capacity: 200_000,
    };

    /// Pending SKUs of a channel at or below which a pause ends.
    fn queue_low_water(&self) -> usize {
        self.queue_capacity - self.queue_capacity / 4
    }

    /// Most input records held (read, not yet delivered or dead-lettered) over all partitions
    /// before reading pauses: twice the channels' queue capacities. Many records of one SKU
    /// coalesce into one queued update but stay held (and each costs its offset and cover).
    fn held_capacity(&self, channels: usize) -> usize {
        self.queue_capacity
            .saturating_mul(2)
            .saturating_mul(channels.max(1))
    }
}

impl Default for Bounds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one channel keeps.
#[derive(Debug)]
struct ChannelState {
    queue: CoalescingQueue,
    /// Per SKU, the entry of the request in flight (with every record it stands for).
    in_flight: HashMap<String, Queued>,
    /// Per SKU, the highest version the marketplace accepted from this process, for the
    /// [`Bounds::delivered_capacity`] SKUs delivered last.
    delivered: RecentMap<String, i64>,
    /// The daily revision budget of a marketplace that limits revisions per listing (eBay).
    revisions: Option<RevisionBudget>,
}

impl ChannelState {
    fn new(bounds: &Bounds, revisions: Option<RevisionLimit>) -> Self {
        Self {
            queue: CoalescingQueue::new(),
            in_flight: HashMap::new(),
            delivered: RecentMap::new(bounds.delivered_capacity),
            revisions: revisions.map(|l| RevisionBudget::new(l, bounds.delivered_capacity)),
        }
    }

    /// SKUs queued or in flight.
    fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Offers an entry: dropped when a version at least as new was delivered (its covers are
    /// returned to acknowledge now) or is in flight (it rides along), else queued.
    fn offer(&mut self, entry: Queued) -> (Vec<Cover>, bool) {
        let (sku, version) = (entry.update.sku.as_str(), entry.update.version);
        if self.delivered.get(sku).is_some_and(|d| *d >= version) {
            return (entry.covers, true);
        }
        if let Some(flying) = self.in_flight.get_mut(sku) {
            if flying.update.version >= version {
                flying.covers.extend(entry.covers);
                flying.oldest_event_time = flying.oldest_event_time.min(entry.oldest_event_time);
                return (Vec::new(), true);
            }
        }
        let coalesced = self.queue.offer_entry(entry) != Offered::Queued;
        (Vec::new(), coalesced)
    }
}

/// The state behind the sink's lock.
#[derive(Debug, Default)]
struct Shared {
    channels: Vec<ChannelState>,
    partitions: BTreeMap<i32, PartitionTracker>,
    next_generation: u32,
}

impl Shared {
    fn ack(&mut self, covers: &[Cover]) {
        for c in covers {
            if let Some(t) = self.partitions.get_mut(&c.partition) {
                if t.generation == c.generation {
                    t.ack(c.offset);
                }
            }
        }
    }

    /// Whether a cover belongs to a partition this process still owns and keeps.
    fn keeps(&self, c: &Cover) -> bool {
        self.partitions
            .get(&c.partition)
            .is_some_and(|t| t.generation == c.generation && !t.revoking)
    }
}

/// One channel's sender side.
#[derive(Debug)]
struct ChannelRuntime {
    config: ChannelConfig,
    marketplace: Box<dyn Marketplace>,
    api: Api,
    notify: Notify,
    permits: Arc<Semaphore>,
}

/// The marketplace push sink: per channel a coalescing queue, a token bucket and a sender that
/// turns updates into marketplace API calls; per partition the offsets still waiting.
#[derive(Debug)]
pub struct HttpPushSink {
    channels: Vec<ChannelRuntime>,
    index: HashMap<String, usize>,
    state: Mutex<Shared>,
    producer: KafkaProducer,
    source_topic: String,
    dlq_topic: String,
    stop: watch::Sender<bool>,
    fatal: Mutex<Option<Error>>,
    /// The first dead letter the broker refused for good. It stays: the producer reports a
    /// failure once, and nothing may be committed past it, ever, in this process.
    refused: Mutex<Option<String>>,
    jitter: Mutex<Jitter>,
    bounds: Bounds,
}

impl HttpPushSink {
    /// Builds the sink for `configs`, dead-lettering to `dlq_topic` with `producer`, keeping
    /// in memory what `bounds` allow.
    ///
    /// # Errors
    /// [`Error::Config`] when the HTTP client cannot be built or a bound is 0.
    pub fn new(
        configs: Vec<ChannelConfig>,
        producer: KafkaProducer,
        source_topic: String,
        dlq_topic: String,
        bounds: Bounds,
    ) -> Result<Self> {
        if bounds.queue_capacity == 0 || bounds.delivered_capacity == 0 {
            return Err(Error::Config(format!(
                "push queue capacity and delivered capacity must be at least 1 (got {} and {})",
                bounds.queue_capacity, bounds.delivered_capacity
            )));
        }
        let mut channels = Vec::with_capacity(configs.len());
        let mut index = HashMap::new();
        for (i, config) in configs.into_iter().enumerate() {
            let client = super::api::client(
                config.timeout.min(Duration::from_secs(10)),
                config.max_in_flight,
            )
            .map_err(|e| Error::Config(format!("HTTP client for {}: {e}", config.name)))?;
            metrics_at_zero(&config);
            index.insert(config.name.clone(), i);
            channels.push(ChannelRuntime {
                api: Api {
                    channel: config.name.clone(),
                    client,
                    limiter: Limiter::new(config.rate_per_sec, config.burst),
                    operations: Api::operation_limiters(&config.operation_limits),
                    timeout: config.timeout,
                },
                marketplace: marketplaces::for_kind(config.kind),
                notify: Notify::new(),
                permits: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
            });
        }
        let state = Shared {
            channels: channels
                .iter()
                .map(|c| ChannelState::new(&bounds, c.marketplace.revision_limit()))
                .collect(),
            ..Shared::default()
        };
        Ok(Self {
            channels,
            index,
            state: Mutex::new(state),
            producer,
            source_topic,
            dlq_topic,
            stop: watch::channel(false).0,
            fatal: Mutex::new(None),
            refused: Mutex::new(None),
            jitter: Mutex::new(Jitter::from_clock(0x5eed)),
            bounds,
        })
    }

    fn state(&self) -> MutexGuard<'_, Shared> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The channels' names, in topology order.
    pub fn channel_names(&self) -> Vec<&str> {
        self.channels
            .iter()
            .map(|c| c.config.name.as_str())
            .collect()
    }

    /// Takes the error that stopped a sender, if any.
    pub fn take_fatal(&self) -> Option<Error> {
        self.fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn set_fatal(&self, e: Error) {
        error!(error = %e, "push sink failed");
        self.fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(e);
    }

    fn notify(&self, channel: usize) {
        if let Some(c) = self.channels.get(channel) {
            c.notify.notify_one();
        }
    }

    // -----------------------------------------------------------------------------------------
    // The consumer side

    /// Starts tracking an assigned partition (see [`PartitionTracker::new`]).
    pub fn assign(&self, partition: i32, catch_up_to: Option<i64>) {
        let mut state = self.state();
        state.next_generation += 1;
        let generation = state.next_generation;
        let channels = state.channels.len();
        state.partitions.insert(
            partition,
            PartitionTracker::new(generation, channels, catch_up_to),
        );
        info!(
            topic = %self.source_topic,
            partition,
            generation,
            catch_up_to,
            "partition assigned"
        );
    }

    /// The partitions tracked.
    pub fn partitions(&self) -> Vec<i32> {
        self.state().partitions.keys().copied().collect()
    }

    /// Whether reading should be paused, given whether it is now (see [`Bounds`]): it pauses
    /// when a channel has `queue_capacity` SKUs pending or the partitions hold twice the
    /// channels' capacities of records, and resumes once every channel is at three quarters of
    /// its capacity and the held records at three quarters of theirs.
    pub fn backpressure(&self, paused: bool) -> bool {
        let state = self.state();
        let pending = state
            .channels
            .iter()
            .map(ChannelState::pending)
            .max()
            .unwrap_or(0);
        let held: usize = state.partitions.values().map(PartitionTracker::held).sum();
        let held_cap = self.bounds.held_capacity(state.channels.len());
        if paused {
            pending > self.bounds.queue_low_water() || held > held_cap - held_cap / 4
        } else {
            pending >= self.bounds.queue_capacity || held >= held_cap
        }
    }

    /// The partitions a pause applies to: those not catching up (a catch-up must reach its
    /// end before anything of it is sent, so pausing it could wait for ever).
    pub fn pausable(&self) -> Vec<i32> {
        self.state()
            .partitions
            .iter()
            .filter(|(_, t)| !t.catching_up())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Per channel, the SKUs pending (queued or in flight), and the records held over all
    /// partitions.
    pub fn pending(&self) -> (Vec<usize>, usize) {
        let state = self.state();
        (
            state.channels.iter().map(ChannelState::pending).collect(),
            state.partitions.values().map(PartitionTracker::held).sum(),
        )
    }

    /// Handles one record of the availability topic.
    ///
    /// # Errors
    /// [`Error::Kafka`] when a dead letter cannot be enqueued.
    pub fn ingest(
        &self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<()> {
        self.ingest_traced(partition, offset, key, payload, Vec::new())
    }

    /// As [`Self::ingest`], with the record's correlation id and trace context headers (they
    /// follow its update to a dead letter).
    ///
    /// # Errors
    /// [`Error::Kafka`] when a dead letter cannot be enqueued.
    pub fn ingest_traced(
        &self,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        mut trace: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<()> {
        let decoded = payload.map(avro::decode::<ChannelAvailability>);
        let mut touched = None;
        let mut dead = None;
        {
            let mut guard = self.state();
            let state = &mut *guard;
            let Some(tracker) = state.partitions.get_mut(&partition) else {
                return Ok(());
            };
            if !tracker.read(offset) {
                return Ok(());
            }
            let cover = Cover {
                partition,
                generation: tracker.generation,
                offset,
            };
            match decoded {
                None | Some(Err(_)) => {
                    tracker.hold(offset);
                    let reason = match &decoded {
                        Some(Err(e)) => format!("not a ChannelAvailability record: {e}"),
                        _ => "record without a value".to_string(),
                    };
                    dead = Some((cover, reason));
                }
                Some(Ok(a)) => {
                    if let Some(&ch) = self.index.get(&a.channel) {
                        tracker.hold(offset);
                        let update = Update {
                            sku: a.sku,
                            quantity: a.quantity.max(0),
                            version: a.version,
                            event_id: a.event_id,
                            event_time: a.event_time,
                            // Only a readable record gets an update; only an unreadable
                            // one a dead letter of its own: the trace goes to one of them.
                            trace: std::mem::take(&mut trace),
                        };
                        if tracker.catching_up() {
                            if let Some(q) = tracker.staging.get_mut(ch) {
                                if q.offer(update, vec![cover]) != Offered::Queued {
                                    self.count_coalesced(ch, 1);
                                }
                            }
                        } else {
                            let (ack, coalesced) = state
                                .channels
                                .get_mut(ch)
                                .map(|c| c.offer(Queued::new(update, vec![cover])))
                                .unwrap_or_default();
                            if coalesced {
                                self.count_coalesced(ch, 1);
                            }
                            state.ack(&ack);
                            touched = Some(ch);
                        }
                    }
                }
            }
            let done = state
                .partitions
                .get(&partition)
                .is_some_and(|t| t.caught_up_with(offset));
            if done {
                drop(guard);
                self.caught_up(partition);
            }
        }
        if let Some(ch) = touched {
            self.notify(ch);
        }
        if let Some((cover, reason)) = dead {
            warn!(topic = %self.source_topic, partition, offset, reason = %reason, "availability record dead-lettered");
            self.dead_letter(DeadLetter::unreadable(key, payload, cover, reason, trace))?;
        }
        Ok(())
    }

    /// Ends a partition's catch-up: its staged updates go to their channels.
    pub fn caught_up(&self, partition: i32) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(tracker) = state.partitions.get_mut(&partition) else {
            return;
        };
        if !tracker.catching_up() {
            return;
        }
        let staged = tracker.finish_catch_up();
        let mut moved = 0usize;
        let mut acks = Vec::new();
        for (ch, entries) in staged.into_iter().enumerate() {
            let Some(channel) = state.channels.get_mut(ch) else {
                continue;
            };
            for entry in entries {
                moved += 1;
                let (ack, coalesced) = channel.offer(entry);
                if coalesced {
                    self.count_coalesced(ch, 1);
                }
                acks.extend(ack);
            }
        }
        state.ack(&acks);
        drop(guard);
        info!(topic = %self.source_topic, partition, updates = moved, "partition caught up; its newest updates are queued");
        for ch in 0..self.channels.len() {
            self.notify(ch);
        }
    }

    /// Starts revoking a partition: its queued and staged updates are dropped (the next owner
    /// sends them) and its failed in-flight updates will not be queued again.
    pub fn revoke_begin(&self, partition: i32) {
        let mut guard = self.state();
        let state = &mut *guard;
        let Some(tracker) = state.partitions.get_mut(&partition) else {
            return;
        };
        tracker.revoking = true;
        for q in &mut tracker.staging {
            q.drain();
        }
        let dropped: usize = state
            .channels
            .iter_mut()
            .map(|c| c.queue.drop_partition(partition))
            .sum();
        info!(topic = %self.source_topic, partition, dropped, "partition revoked; its queued updates are left to the next owner");
    }

    /// Whether a request in flight carries an update of `partition`.
    pub fn in_flight_on(&self, partition: i32) -> bool {
        let state = self.state();
        let Some(generation) = state.partitions.get(&partition).map(|t| t.generation) else {
            return false;
        };
        state.channels.iter().any(|c| {
            c.in_flight.values().any(|e| {
                e.covers
                    .iter()
                    .any(|cv| cv.partition == partition && cv.generation == generation)
            })
        })
    }

    /// Stops tracking a revoked partition and returns its last commit point.
    pub fn revoke_end(&self, partition: i32) -> Option<i64> {
        let tracker = self.state().partitions.remove(&partition)?;
        tracker.to_commit()
    }

    /// The partitions whose commit point moved, with the offset to commit.
    pub fn commit_points(&self) -> Vec<(i32, i64)> {
        self.state()
            .partitions
            .iter()
            .filter_map(|(p, t)| t.to_commit().map(|o| (*p, o)))
            .collect()
    }

    /// Per tracked partition that read something: the partition, the last offset sent for
    /// commit (`None`: none) and the offset after the last record read.
    pub fn read_positions(&self) -> Vec<(i32, Option<i64>, i64)> {
        self.state()
            .partitions
            .iter()
            .filter_map(|(p, t)| Some((*p, t.committed_offset(), t.read_up_to()?)))
            .collect()
    }

    /// Every tracked partition's commit point, moved since the last commit or not.
    pub fn all_commit_points(&self) -> Vec<(i32, i64)> {
        self.state()
            .partitions
            .iter()
            .filter_map(|(p, t)| t.commit_point().map(|o| (*p, o)))
            .collect()
    }

    /// Notes committed offsets.
    pub fn committed(&self, points: &[(i32, i64)]) {
        let mut state = self.state();
        for (p, o) in points {
            if let Some(t) = state.partitions.get_mut(p) {
                t.committed(*o);
            }
        }
    }

    /// Waits up to `wait` until the broker acknowledged every dead letter sent so far: `true`
    /// when it did (the commit may go ahead), `false` when some are still unacknowledged (a
    /// broker outage: commit later).
    ///
    /// A refusal is remembered: the producer reports each failed record once, so a later flush
    /// would otherwise see nothing wrong and let a commit go past the refused dead letter (whose
    /// input records were acknowledged when it was enqueued). From the first refusal on, every
    /// call fails; the process stops, and its successor reads the records again from the last
    /// commit below them and dead-letters them again.
    ///
    /// # Errors
    /// [`Error::Topics`] when the broker refused a dead letter for good, now or before.
    pub fn flush_dead_letters(&self, wait: Duration) -> Result<bool> {
        let (acks, done) = self.producer.flush_within(wait);
        self.check_refused(acks)?;
        Ok(done)
    }

    fn check_refused(&self, acks: crate::kafka::Acks) -> Result<()> {
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if acks.failed > 0 && refused.is_none() {
            *refused = Some(format!(
                "the broker refused {} dead letter(s) for good (first: {})",
                acks.failed,
                acks.first_error.unwrap_or_default()
            ));
        }
        match refused.as_ref() {
            Some(why) => Err(Error::Topics(format!(
                "{why}; offsets are not committed past them"
            ))),
            None => Ok(()),
        }
    }

    fn count_coalesced(&self, ch: usize, n: u64) {
        if let Some(c) = self.channels.get(ch) {
            metrics::counter!(m::PUSH_COALESCED, "channel" => c.config.name.clone()).increment(n);
        }
    }

    /// Sets the queue depth and freshness gauges of every channel.
    pub fn update_gauges(&self) {
        let now_ms = crate::clock::now_ms();
        let state = self.state();
        for (ch, rt) in self.channels.iter().enumerate() {
            let Some(c) = state.channels.get(ch) else {
                continue;
            };
            let staged: Vec<&CoalescingQueue> = state
                .partitions
                .values()
                .filter_map(|t| t.staging.get(ch))
                .collect();
            let depth = c.queue.len() + staged.iter().map(|q| q.len()).sum::<usize>();
            let oldest = c
                .queue
                .oldest_event_time()
                .into_iter()
                .chain(c.in_flight.values().map(|e| e.oldest_event_time))
                .chain(staged.iter().filter_map(|q| q.oldest_event_time()))
                .min();
            rt.api.update_gauges();
            let name = rt.config.name.clone();
            if let Some(budget) = &c.revisions {
                metrics::gauge!(m::PUSH_REVISIONS_TODAY, "channel" => name.clone())
                    .set(budget.spent_today() as f64);
                metrics::gauge!(m::PUSH_REVISIONS_HELD, "channel" => name.clone())
                    .set(budget.held() as f64);
            }
            metrics::gauge!(m::PUSH_QUEUE_DEPTH, "channel" => name.clone()).set(depth as f64);
            let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
            metrics::gauge!(m::PUSH_FRESHNESS, "channel" => name).set(age);
        }
    }
}

/// Exports a channel's push series at 0 from the first scrape on.
fn metrics_at_zero(config: &ChannelConfig) {
    let c = config.name.clone();
    if marketplaces::for_kind(config.kind)
        .revision_limit()
        .is_some()
    {
        metrics::counter!(m::PUSH_REVISION_BUDGET_EXHAUSTED, "channel" => c.clone()).increment(0);
        metrics::gauge!(m::PUSH_REVISIONS_TODAY, "channel" => c.clone()).set(0.0);
        metrics::gauge!(m::PUSH_REVISIONS_HELD, "channel" => c.clone()).set(0.0);
    }
    for o in &config.operation_limits {
        metrics::counter!(m::PUSH_OPERATION_THROTTLED, "channel" => c.clone(), "operation" => o.operation)
            .increment(0);
    }
    metrics::counter!(m::PUSH_SENT, "channel" => c.clone()).increment(0);
    metrics::counter!(m::PUSH_COALESCED, "channel" => c.clone()).increment(0);
    metrics::gauge!(m::PUSH_QUEUE_DEPTH, "channel" => c.clone()).set(0.0);
    metrics::gauge!(m::PUSH_FRESHNESS, "channel" => c.clone()).set(0.0);
    let _ = metrics::histogram!(m::PUSH_REQUEST_SECONDS, "channel" => c);
}

mod sender;
#[cfg(test)]
mod tests;
