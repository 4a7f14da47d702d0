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
}

impl ChannelState {
    fn new(bounds: &Bounds) -> Self {
        Self {
            queue: CoalescingQueue::new(),
            in_flight: HashMap::new(),
            delivered: RecentMap::new(bounds.delivered_capacity),
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
            metrics_at_zero(&config.name);
            index.insert(config.name.clone(), i);
            channels.push(ChannelRuntime {
                api: Api {
                    channel: config.name.clone(),
                    client,
                    limiter: Limiter::new(config.rate_per_sec, config.burst),
                    timeout: config.timeout,
                },
                marketplace: marketplaces::for_kind(config.kind),
                notify: Notify::new(),
                permits: Arc::new(Semaphore::new(config.max_in_flight)),
                config,
            });
        }
        let state = Shared {
            channels: (0..channels.len())
                .map(|_| ChannelState::new(&bounds))
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
            self.dead_letter(DeadLetter::unreadable(key, payload, cover, reason))?;
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

    // -----------------------------------------------------------------------------------------
    // The sender side

    /// Asks every sender to stop taking new work.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        for c in &self.channels {
            c.notify.notify_one();
        }
    }

    /// Runs every channel's sender and the gauges until [`HttpPushSink::stop`], then waits
    /// for the requests in flight (at most `drain` long).
    pub async fn run(self: Arc<Self>, drain: Duration) {
        let mut senders = Vec::new();
        for ch in 0..self.channels.len() {
            senders.push(tokio::spawn(Arc::clone(&self).run_sender(ch)));
        }
        let gauges = tokio::spawn(Arc::clone(&self).run_gauges());
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|s| *s).await;
        let all = async {
            for s in senders {
                let _ = s.await;
            }
        };
        if tokio::time::timeout(drain, all).await.is_err() {
            warn!(
                drain_s = drain.as_secs(),
                "requests still in flight at shutdown; their updates are sent again by the next owner"
            );
        }
        gauges.abort();
        self.update_gauges();
    }

    async fn run_sender(self: Arc<Self>, ch: usize) {
        let Some(rt) = self.channels.get(ch) else {
            return;
        };
        let mut stop = self.stop.subscribe();
        loop {
            if *stop.borrow() {
                break;
            }
            let permit = tokio::select! {
                p = Arc::clone(&rt.permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stop.wait_for(|s| *s) => break,
            };
            // Wait for something to send.
            loop {
                if *stop.borrow() {
                    break;
                }
                let ready = {
                    let state = self.state();
                    state.channels.get(ch).and_then(|c| {
                        c.queue
                            .first_ready(Instant::now(), |sku| c.in_flight.contains_key(sku))
                    })
                };
                if ready.is_some() {
                    break;
                }
                tokio::select! {
                    () = rt.notify.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            }
            if *stop.borrow() {
                break;
            }
            // A token first, then pick: what goes out is as fresh as it can be, and a
            // stock-out that arrives meanwhile is picked first.
            tokio::select! {
                () = rt.api.limiter.acquire() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let batch = self.take_batch(ch);
            if batch.is_empty() {
                rt.api.limiter.refund();
                continue;
            }
            let sink = Arc::clone(&self);
            tokio::spawn(async move {
                let _permit = permit;
                let Some(rt) = sink.channels.get(ch) else {
                    return;
                };
                let calls = Calls::new(&rt.api, true);
                let refs: Vec<&Update> = batch.iter().collect();
                let delivery =
                    delivery::deliver(&calls, rt.marketplace.as_ref(), &rt.config, &refs).await;
                sink.complete(ch, &batch, delivery);
                rt.notify.notify_one();
            });
        }
        // Wait for this channel's requests in flight.
        let max = u32::try_from(rt.config.max_in_flight).unwrap_or(u32::MAX);
        let _ = rt.permits.acquire_many(max).await;
        debug!(channel = %rt.config.name, "sender stopped");
    }

    /// Takes the next batch of a channel and marks it in flight.
    fn take_batch(&self, ch: usize) -> Vec<Update> {
        let Some(rt) = self.channels.get(ch) else {
            return Vec::new();
        };
        let mut state = self.state();
        let Some(channel) = state.channels.get_mut(ch) else {
            return Vec::new();
        };
        let ChannelState {
            queue, in_flight, ..
        } = channel;
        let now = Instant::now();
        let Some(first_is_stock_out) = queue.first_ready(now, |sku| in_flight.contains_key(sku))
        else {
            return Vec::new();
        };
        let n = rt
            .marketplace
            .batch_for(first_is_stock_out, queue.len(), rt.config.batch_size);
        let taken = queue.take(n, now, |sku| in_flight.contains_key(sku));
        let mut out = Vec::with_capacity(taken.len());
        for entry in taken {
            out.push(entry.update.clone());
            in_flight.insert(entry.update.sku.clone(), entry);
        }
        out
    }

    /// Applies a delivery's results: acknowledges, retries, dead-letters.
    fn complete(&self, ch: usize, updates: &[Update], delivery: Delivery) {
        let Some(rt) = self.channels.get(ch) else {
            return;
        };
        let name = rt.config.name.as_str();
        let mut dead = Vec::new();
        let mut sent = 0u64;
        let mut coalesced = 0u64;
        {
            let mut guard = self.state();
            let state = &mut *guard;
            let mut acks = Vec::new();
            let now = Instant::now();
            let mut requeue = Vec::new();
            {
                let Some(channel) = state.channels.get_mut(ch) else {
                    return;
                };
                for (update, result) in updates.iter().zip(delivery.results) {
                    let Some(mut entry) = channel.in_flight.remove(&update.sku) else {
                        continue;
                    };
                    match result {
                        ItemResult::Accepted => {
                            let d = channel.delivered.entry_or_default(update.sku.clone());
                            *d = (*d).max(update.version);
                            sent += 1;
                            acks.append(&mut entry.covers);
                        }
                        ItemResult::Rejected {
                            status,
                            reason,
                            body,
                        } => {
                            warn!(channel = name, sku = %update.sku, version = update.version, status, reason = %reason, "marketplace refused the update; dead-lettered");
                            dead.push(DeadLetter::update(
                                ch,
                                name,
                                entry,
                                "marketplace_rejected",
                                reason,
                                Some(status),
                                body,
                            ));
                        }
                        ItemResult::Retry { class, reason } => {
                            metrics::counter!(m::PUSH_RETRIES, "channel" => name.to_string(), "reason" => class).increment(1);
                            entry.attempts += 1;
                            if entry.attempts > rt.config.max_retries {
                                warn!(channel = name, sku = %update.sku, version = update.version, attempts = entry.attempts, reason = %reason, "update failed on every try; dead-lettered");
                                dead.push(DeadLetter::update(
                                    ch,
                                    name,
                                    entry,
                                    "retries_exhausted",
                                    reason,
                                    None,
                                    String::new(),
                                ));
                            } else {
                                let jitter =
                                    self.jitter.lock().map(|mut j| j.next_f64()).unwrap_or(0.5);
                                let delay =
                                    backoff(entry.attempts, BACKOFF_BASE, BACKOFF_CAP, jitter);
                                debug!(channel = name, sku = %update.sku, attempts = entry.attempts, retry_in_ms = delay.as_millis() as u64, reason = %reason, "update will be retried");
                                entry.not_before = Some(now + delay);
                                requeue.push(entry);
                            }
                        }
                        ItemResult::Again { class } => {
                            metrics::counter!(m::PUSH_RETRIES, "channel" => name.to_string(), "reason" => class).increment(1);
                            entry.not_before = None;
                            requeue.push(entry);
                        }
                    }
                }
            }
            for mut entry in requeue {
                entry.covers.retain(|c| state.keeps(c));
                if entry.covers.is_empty() {
                    continue;
                }
                if let Some(channel) = state.channels.get_mut(ch) {
                    if channel.queue.requeue(entry) == Offered::Superseded {
                        coalesced += 1;
                    }
                }
            }
            state.ack(&acks);
        }
        if delivery.throttled {
            let jitter = self.jitter.lock().map(|mut j| j.next_f64()).unwrap_or(0.5);
            let pause = rt.api.limiter.throttled(None, jitter);
            info!(
                channel = name,
                pause_ms = pause.as_millis() as u64,
                "marketplace throttled the channel; pausing it"
            );
        }
        if sent > 0 {
            metrics::counter!(m::PUSH_SENT, "channel" => name.to_string()).increment(sent);
        }
        if coalesced > 0 {
            self.count_coalesced(ch, coalesced);
        }
        for letter in dead {
            if let Err(e) = self.dead_letter(letter) {
                self.set_fatal(e);
            }
        }
    }

    /// Produces a dead letter and, once it is enqueued, acknowledges what it covers (the commit
    /// flushes the producer before committing, so it is on the broker by then).
    fn dead_letter(&self, letter: DeadLetter) -> Result<()> {
        let channel = self
            .channels
            .get(letter.channel)
            .map(|c| c.config.name.clone());
        let headers = letter.headers(&self.source_topic, channel.as_deref());
        self.producer.send(ProduceRecord {
            topic: &self.dlq_topic,
            partition: None,
            key: Some(&letter.key),
            value: Some(&letter.value),
            timestamp: None,
            headers,
        })?;
        metrics::counter!(m::DLQ, "stage" => STAGE, "kind" => letter.kind).increment(1);
        if let Some(name) = channel {
            metrics::counter!(m::PUSH_FAILED, "channel" => name, "kind" => letter.kind)
                .increment(1);
        }
        self.state().ack(&letter.covers);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Gauges

    async fn run_gauges(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.update_gauges();
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
            let name = rt.config.name.clone();
            metrics::gauge!(m::PUSH_QUEUE_DEPTH, "channel" => name.clone()).set(depth as f64);
            let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
            metrics::gauge!(m::PUSH_FRESHNESS, "channel" => name).set(age);
        }
    }
}

/// Exports a channel's push series at 0 from the first scrape on.
fn metrics_at_zero(channel: &str) {
    let c = channel.to_string();
    metrics::counter!(m::PUSH_SENT, "channel" => c.clone()).increment(0);
    metrics::counter!(m::PUSH_COALESCED, "channel" => c.clone()).increment(0);
    metrics::gauge!(m::PUSH_QUEUE_DEPTH, "channel" => c.clone()).set(0.0);
    metrics::gauge!(m::PUSH_FRESHNESS, "channel" => c.clone()).set(0.0);
    let _ = metrics::histogram!(m::PUSH_REQUEST_SECONDS, "channel" => c);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::marketplaces::testing;
    use shelfsync_topology::{PushKind, Topology};

    /// A sink with one webhook channel whose producer cannot reach a broker and gives a record
    /// up after 10 ms: every dead letter it produces is refused.
    fn sink_with_refusing_producer() -> HttpPushSink {
        sink_with(Bounds::DEFAULT)
    }

    fn sink_with(bounds: Bounds) -> HttpPushSink {
        let topology = Topology::from_toml_str(
            r#"
application_id = "app"
[kafka]
bootstrap_servers = "127.0.0.1:1"
[kafka.properties]
"message.timeout.ms" = "10"
"linger.ms" = "1"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "hook"
adapter = "generic"
"#,
        )
        .unwrap();
        let producer = KafkaProducer::new(&topology).unwrap();
        HttpPushSink::new(
            vec![testing::config("hook", PushKind::Webhook)],
            producer,
            "availability".into(),
            "dlq".into(),
            bounds,
        )
        .unwrap()
    }

    #[test]
    fn a_refused_dead_letter_blocks_every_later_commit() {
        let sink = sink_with_refusing_producer();
        sink.assign(0, None);
        // Offset 0 is unreadable: dead-lettered (acknowledged once enqueued).
        sink.ingest(0, 0, Some(b"k"), Some(b"not avro")).unwrap();
        assert_eq!(sink.commit_points(), [(0, 1)]);
        let wait = Duration::from_secs(5);
        let first = sink.flush_dead_letters(wait).unwrap_err().to_string();
        assert!(first.contains("refused 1 dead letter"), "{first}");
        // The refusal is not forgotten by the next flush, nor by the one after a new record:
        // nothing may ever be committed past the refused dead letter.
        assert!(sink.flush_dead_letters(wait).is_err());
        sink.ingest(0, 1, None, Some(b"still not avro")).unwrap();
        assert!(sink.flush_dead_letters(wait).is_err());
    }

    fn record(sku: &str, version: i64) -> Vec<u8> {
        let a = ChannelAvailability {
            event_id: format!("{sku}-{version}"),
            channel: "hook".into(),
            sku: sku.into(),
            quantity: 5,
            version,
            event_time: 1,
        };
        avro::encode(&a, avro::Framing::SingleObject).unwrap()
    }

    #[test]
    fn a_full_queue_pauses_reading_until_it_drains_to_three_quarters() {
        let sink = sink_with(Bounds {
            queue_capacity: 8,
            delivered_capacity: 4,
        });
        sink.assign(0, None);
        sink.assign(1, Some(100));
        let mut offset = 0;
        let mut ingest = |sku: &str, version| {
            sink.ingest(0, offset, None, Some(&record(sku, version)))
                .unwrap();
            offset += 1;
        };
        for i in 0..7 {
            ingest(&format!("S{i}"), 1);
        }
        // Newer versions of waiting SKUs coalesce: still 7 SKUs pending, no pause.
        ingest("S0", 2);
        ingest("S1", 2);
        assert_eq!(sink.pending(), (vec![7], 9));
        assert!(!sink.backpressure(false));
        ingest("S7", 1);
        assert!(sink.backpressure(false));
        // Only the partition that is not catching up is paused.
        assert_eq!(sink.pausable(), [0]);
        // In flight still counts as pending; delivered ones do not.
        let batch = sink.take_batch(0);
        assert!(sink.backpressure(true));
        let n = batch.len().min(2);
        sink.complete(0, &batch[..n], Delivery::all(n, ItemResult::Accepted));
        // 6 left pending: at three quarters (6 of 8) reading resumes.
        let rest = &batch[n..];
        let (pending, _) = sink.pending();
        assert_eq!(pending, [8 - n]);
        assert_eq!(sink.backpressure(true), 8 - n > 6);
        sink.complete(0, rest, Delivery::all(rest.len(), ItemResult::Accepted));
        assert!(!sink.backpressure(true));
        assert_eq!(sink.pending(), (vec![0], 0));
    }
}
