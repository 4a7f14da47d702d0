//! Kafka clients: configuration shared by every client, the producer with its delivery
//! tracking, and header names.
//!
//! Properties from the topology's `[kafka.properties]` and `SHELFSYNC_KAFKA_*` pass through to
//! librdkafka untouched; the few that the delivery guarantee depends on are set here last
//! (the topology refuses them in the file).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use shelfsync_topology::Topology;
use tracing::{debug, error, info, warn};

use crate::error::{Error, Result};
use crate::metrics as m;

mod partitioner;
pub use partitioner::{murmur2, partition_for_key};

/// Header carrying `(source task, source offset, output index)` as `task/offset/index`.
pub const STAMP_HEADER: &str = "shelfsync-stamp";
/// Header of a progress mark: `task/event_time_ms`, how far an upstream task's event time has
/// advanced (`9223372036854775807`: caught up, nothing pending). The record has no key or value.
pub const PROGRESS_HEADER: &str = "shelfsync-progress";
/// Header carrying an external output's deterministic `event_id`.
pub const EVENT_ID_HEADER: &str = "shelfsync-event-id";
/// Header on changelog records: the writer id of the state directory that wrote it.
pub const CHANGELOG_WRITER_HEADER: &str = "shelfsync-writer";
/// Header on changelog records: the input offset whose epoch wrote it.
pub const CHANGELOG_OFFSET_HEADER: &str = "shelfsync-input-offset";
/// DLQ headers.
pub const DLQ_STAGE: &str = "shelfsync-dlq-stage";
/// DLQ header: source topic.
pub const DLQ_TOPIC: &str = "shelfsync-dlq-topic";
/// DLQ header: source partition.
pub const DLQ_PARTITION: &str = "shelfsync-dlq-partition";
/// DLQ header: source offset.
pub const DLQ_OFFSET: &str = "shelfsync-dlq-offset";
/// DLQ header: error class.
pub const DLQ_KIND: &str = "shelfsync-dlq-error-kind";
/// DLQ header: human-readable reason.
pub const DLQ_REASON: &str = "shelfsync-dlq-reason";
/// Header set on a dead letter whose key or value was cut to fit (`true`).
pub const DLQ_TRUNCATED: &str = "shelfsync-dlq-truncated";
/// Header with a cut dead letter's original sizes, `key=<bytes>,value=<bytes>`.
pub const DLQ_ORIGINAL_BYTES: &str = "shelfsync-dlq-original-bytes";
/// Header with the hex SHA-256 of a cut dead letter's original value.
pub const DLQ_VALUE_SHA256: &str = "shelfsync-dlq-value-sha256";
/// Header with the hex SHA-256 of a cut dead letter's original key.
pub const DLQ_KEY_SHA256: &str = "shelfsync-dlq-key-sha256";

/// Header on a record `shelfsync dlq redrive` re-sent: the dead letter it came from,
/// `<dlq topic>/<partition>/<offset>`.
pub const REDRIVE_OF_HEADER: &str = "shelfsync-redrive-of";
/// Header on a redriven record: how many times its original has been redriven, `1` the first.
pub const REDRIVE_ATTEMPT_HEADER: &str = "shelfsync-redrive-attempt";
/// Header with the correlation id of the source record an output or dead letter comes from:
/// a raw order's delivery id, an ERP record's `<topic>/<partition>/<offset>`, or the id the
/// source record carried in this header itself. Passed on from hop to hop.
pub const CORRELATION_HEADER: &str = "shelfsync-correlation-id";
/// W3C Trace Context headers (OpenTelemetry's Kafka convention): passed on unchanged from an
/// input record to everything it causes.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// See [`TRACEPARENT_HEADER`].
pub const TRACESTATE_HEADER: &str = "tracestate";
/// Headers an input record carries to its outputs and its dead letter.
pub const TRACE_HEADERS: [&str; 3] = [CORRELATION_HEADER, TRACEPARENT_HEADER, TRACESTATE_HEADER];
/// Headers an input record carries to its dead letter: its trace headers, and (a redriven record
/// that fails again) which dead letter and which attempt it was.
pub const CARRIED_HEADERS: [&str; 5] = [
    CORRELATION_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    REDRIVE_OF_HEADER,
    REDRIVE_ATTEMPT_HEADER,
];

/// `msg`'s [`TRACE_HEADERS`] that it has, as owned headers (for a record that keeps them past
/// the message, as the push sink's queued updates do).
pub fn trace_headers<M: Message>(msg: &M) -> Vec<(&'static str, Vec<u8>)> {
    TRACE_HEADERS
        .iter()
        .filter_map(|name| header(msg, name).map(|v| (*name, v.to_vec())))
        .collect()
}

/// The values of `msg`'s [`CARRIED_HEADERS`], in that order.
pub fn carried_headers<M: Message>(msg: &M) -> [Option<&[u8]>; 5] {
    CARRIED_HEADERS.map(|name| header(msg, name))
}

/// The base client config: bootstrap servers plus every pass-through property.
pub fn base_config(topology: &Topology) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &topology.kafka.bootstrap_servers);
    c.set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in &topology.kafka.properties {
        c.set(k, v);
    }
    c
}

/// Config of the idempotent producer every stage uses.
pub fn producer_config(topology: &Topology) -> ClientConfig {
    let mut c = base_config(topology);
    set_default(&mut c, "linger.ms", "5");
    set_default(&mut c, "batch.num.messages", "10000");
    set_default(&mut c, "queue.buffering.max.messages", "1000000");
    set_default(&mut c, "queue.buffering.max.kbytes", "1048576");
    // 0 = never give up: during a broker outage records wait and are retried, never dropped.
    set_default(&mut c, "message.timeout.ms", "0");
    c.set("enable.idempotence", "true");
    c.set("acks", "all");
    c.set("partitioner", "murmur2_random");
    c
}

/// Config of the group consumer.
pub fn consumer_config(topology: &Topology) -> ClientConfig {
    let mut c = base_config(topology);
    set_default(&mut c, "auto.offset.reset", "earliest");
    set_default(&mut c, "session.timeout.ms", "10000");
    set_default(&mut c, "statistics.interval.ms", "5000");
    set_default(&mut c, "fetch.wait.max.ms", "50");
    // librdkafka prefetches up to 100k records per partition by default; a backlog then keeps
    // the broker busy serving fetches that wait in memory. A few epochs' worth is enough.
    set_default(&mut c, "queued.min.messages", "5000");
    set_default(&mut c, "queued.max.messages.kbytes", "16384");
    c.set("group.id", &topology.application_id);
    c.set("partition.assignment.strategy", "cooperative-sticky");
    c.set("enable.auto.commit", "false");
    c.set("enable.auto.offset.store", "false");
    c.set("isolation.level", "read_committed");
    c
}

fn set_default(c: &mut ClientConfig, key: &str, value: &str) {
    if c.get(key).is_none() {
        c.set(key, value);
    }
}

/// Delivery acknowledgements of one epoch.
#[derive(Debug, Default)]
pub struct Acks {
    /// Records acknowledged.
    pub delivered: u64,
    /// Records the broker refused for good, with the first error.
    pub failed: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Highest acknowledged offset per `topic` and partition.
    pub offsets: BTreeMap<(String, i32), i64>,
}

impl Acks {
    fn merge(&mut self, other: Acks) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        for (tp, o) in other.offsets {
            let e = self.offsets.entry(tp).or_insert(-1);
            *e = (*e).max(o);
        }
    }
}

/// What was sent under one tag and what came back.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    done: u64,
    acks: Acks,
}

/// Producer context: counts acknowledgements and failures per tag (the engine tags every
/// record with its epoch, so that it can wait for one epoch while the next is produced).
#[derive(Debug, Default, Clone)]
pub struct AckContext {
    tallies: Arc<Mutex<BTreeMap<usize, Tally>>>,
}

impl AckContext {
    fn tallies(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, Tally>> {
        match self.tallies.lock() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes the acknowledgements gathered so far under every tag, leaving an empty record.
    pub fn take(&self) -> Acks {
        let mut all = Acks::default();
        self.tallies().retain(|_, t| {
            all.merge(std::mem::take(&mut t.acks));
            t.done < t.sent
        });
        all
    }

    /// The acknowledgements of `tag` once every record sent under it has come back (and
    /// forgets the tag), or `None` while some are in flight.
    fn take_complete(&self, tag: usize) -> Option<Acks> {
        let mut tallies = self.tallies();
        match tallies.get(&tag) {
            None => Some(Acks::default()),
            Some(t) if t.done >= t.sent => tallies.remove(&tag).map(|t| t.acks),
            Some(_) => None,
        }
    }

    fn sent(&self, tag: usize, n: i64) {
        let mut tallies = self.tallies();
        let t = tallies.entry(tag).or_default();
        t.sent = t.sent.saturating_add_signed(n);
    }
}

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        let mut tallies = self.tallies();
        let tally = tallies.entry(tag).or_default();
        tally.done += 1;
        let acks = &mut tally.acks;
        match result {
            Ok(msg) => {
                acks.delivered += 1;
                let e = acks
                    .offsets
                    .entry((msg.topic().to_string(), msg.partition()))
                    .or_insert(-1);
                *e = (*e).max(msg.offset());
            }
            Err((e, msg)) => {
                acks.failed += 1;
                metrics::counter!(m::DELIVERY_ERRORS).increment(1);
                if acks.first_error.is_none() {
                    acks.first_error = Some(format!("{} [{}]: {e}", msg.topic(), msg.partition()));
                }
            }
        }
    }
}

/// The process's one idempotent producer.
pub struct KafkaProducer {
    producer: BaseProducer<AckContext>,
    context: AckContext,
    /// The tag the next records are sent under (see [`KafkaProducer::seal`]).
    tag: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer").finish_non_exhaustive()
    }
}

/// One record to produce.
#[derive(Debug)]
pub struct ProduceRecord<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Explicit partition (changelogs), or `None` for the key's partition.
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<&'a [u8]>,
    /// Value (`None` = tombstone).
    pub value: Option<&'a [u8]>,
    /// Timestamp (ms).
    pub timestamp: Option<i64>,
    /// Headers.
    pub headers: Vec<(&'a str, Vec<u8>)>,
}

impl KafkaProducer {
    /// Creates the producer.
    ///
    /// # Errors
    /// [`Error::Kafka`] when librdkafka refuses the configuration.
    pub fn new(topology: &Topology) -> Result<Self> {
        let context = AckContext::default();
        let producer: BaseProducer<AckContext> =
            producer_config(topology).create_with_context(context.clone())?;
        Ok(Self {
            producer,
            context,
            tag: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Enqueues a record, waiting (and serving delivery reports) while the local queue is full.
    ///
    /// # Errors
    /// [`Error::Kafka`] for errors other than a full queue (e.g. an unknown topic or a record
    /// larger than `message.max.bytes`).
    pub fn send(&self, rec: ProduceRecord<'_>) -> Result<()> {
        let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
        for (k, v) in &rec.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let tag = self.tag.load(std::sync::atomic::Ordering::Relaxed);
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(rec.topic, tag).headers(headers);
        if let Some(p) = rec.partition {
            record = record.partition(p);
        }
        if let Some(k) = rec.key {
            record = record.key(k);
        }
        if let Some(v) = rec.value {
            record = record.payload(v);
        }
        if let Some(ts) = rec.timestamp {
            record = record.timestamp(ts);
        }
        let mut waited = 0u32;
        self.context.sent(tag, 1);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    waited += 1;
                    if waited.is_multiple_of(100) {
                        warn!(
                            queued = self.producer.in_flight_count(),
                            "producer queue full; waiting for the broker"
                        );
                    }
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    self.context.sent(tag, -1);
                    return Err(Error::Kafka(e));
                }
            }
        }
    }

    /// Closes the group of records sent so far and returns its tag: later records go under
    /// the next one, and [`wait_for`](Self::wait_for) waits for this group alone.
    pub fn seal(&self) -> usize {
        self.tag.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until every record sent under `tag` is acknowledged (or failed for good), serving
    /// delivery reports and logging while the broker is slow, and returns their
    /// acknowledgements; asks `give_up` every second, and returns `None` when it answers true
    /// (the tag's acknowledgements stay counted).
    pub fn wait_for(&self, tag: usize, give_up: impl FnMut() -> bool) -> Option<Acks> {
        let mut acks = None;
        let done = self.wait_rounds(
            || {
                acks = self.context.take_complete(tag);
                if acks.is_none() {
                    self.producer.poll(Duration::from_millis(5));
                }
                acks.is_some()
            },
            give_up,
        );
        done.then_some(acks).flatten()
    }

    /// Calls `step` until it answers true (done: returns true) or, asked once a second,
    /// `give_up` answers true (returns false), logging every 5 s while the broker is slow.
    fn wait_rounds(
        &self,
        mut step: impl FnMut() -> bool,
        mut give_up: impl FnMut() -> bool,
    ) -> bool {
        const LOG_EVERY: u32 = 5;
        let started = std::time::Instant::now();
        let mut rounds = 0u32;
        while !step() {
            let elapsed = u32::try_from(started.elapsed().as_secs()).unwrap_or(u32::MAX);
            if elapsed <= rounds {
                continue;
            }
            rounds = elapsed;
            if rounds.is_multiple_of(LOG_EVERY) {
                warn!(
                    in_flight = self.producer.in_flight_count(),
                    waited_s = rounds,
                    "waiting for the broker to acknowledge the epoch"
                );
            }
            if give_up() {
                warn!(
                    in_flight = self.producer.in_flight_count(),
                    waited_s = rounds,
                    "gave up waiting for the broker to acknowledge the epoch"
                );
                return false;
            }
        }
        if rounds > 0 {
            info!(
                waited_s = rounds,
                "broker acknowledged the epoch after waiting"
            );
        }
        true
    }

    /// Serves delivery reports without blocking.
    pub fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Waits up to `wait` for every enqueued record to be acknowledged (or failed for good).
    /// Returns the acknowledgements since the last call (a failure is reported once: the
    /// caller keeps it) and whether nothing is left unacknowledged.
    pub fn flush_within(&self, wait: Duration) -> (Acks, bool) {
        let done = self.producer.flush(wait).is_ok();
        (self.context.take(), done)
    }

    /// Waits until every enqueued record is acknowledged (or failed for good), logging while the
    /// broker is unreachable, and returns the acknowledgements since the last call.
    pub fn flush(&self) -> Acks {
        self.flush_unless(|| false)
            .unwrap_or_else(|| unreachable!("a flush that never gives up returns its acks"))
    }

    /// As [`KafkaProducer::flush`], but asks `give_up` every second while records are still in
    /// flight; when it answers true, returns `None` (the acknowledgements so far stay counted
    /// for the next call).
    pub fn flush_unless(&self, give_up: impl FnMut() -> bool) -> Option<Acks> {
        const ROUND: Duration = Duration::from_secs(1);
        self.wait_rounds(|| self.producer.flush(ROUND).is_ok(), give_up)
            .then(|| self.context.take())
    }
}

/// Runs a broker request, retrying while the broker is slow or unreachable: waits 0.5 s,
/// 1 s, 2 s … (capped at 10 s) between tries and logs each failure, for up to `budget`.
///
/// # Errors
/// The last error once `budget` is spent.
pub fn retry<T>(what: &str, budget: Duration, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() + pause < budget => {
                warn!(request = what, error = %e, retry_in_ms = pause.as_millis() as u64, "broker request failed; retrying");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Leaves the group (the consumer's unsubscribe and close) on a thread of its own, waiting at
/// most `wait`: during a broker outage the close can wait for the coordinator much longer, and
/// a stopping process must not. A close left running ends with the process; the group then
/// notices the member is gone when its session times out.
pub fn leave_group<C: ConsumerContext + 'static>(consumer: BaseConsumer<C>, wait: Duration) {
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("leave-group".into())
        .spawn(move || {
            consumer.unsubscribe();
            drop(consumer);
            let _ = done.send(());
        });
    if spawned.is_err() {
        warn!("cannot start a thread to leave the group; leaving it to the session timeout");
        return;
    }
    if closed.recv_timeout(wait).is_err() {
        warn!(
            waited_s = wait.as_secs_f64(),
            "leaving the group did not finish in time (is the broker reachable?); the group notices when the session times out"
        );
    }
}

/// Reads a header value by name.
pub fn header<'a, M: Message>(msg: &'a M, name: &str) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    let headers = msg.headers()?;
    headers.iter().find(|h| h.key == name).and_then(|h| h.value)
}

/// Logs a librdkafka error event at the right level.
pub fn log_client_error(error: &KafkaError, reason: &str) {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) | Some(RDKafkaErrorCode::BrokerTransportFailure) => {
            warn!(%error, reason, "broker unreachable; librdkafka keeps retrying")
        }
        _ => error!(%error, reason, "kafka client error"),
    }
    debug!("client error logged");
}

/// Whether a client error means the broker refuses this client's credentials: retrying cannot
/// help, a person has to fix the configuration.
fn is_refused_credentials(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::UnsupportedSASLMechanism
                | RDKafkaErrorCode::IllegalSASLState
        )
    )
}

/// TLS handshakes that failed in a row before [`check_connection`] calls it a configuration
/// error: one failed handshake can be a broker restarting or a load balancer resetting.
const SSL_FAILURES_REFUSED: u32 = 3;

/// Remembers the first refusal of the credentials, and the failed TLS handshakes.
#[derive(Default)]
struct RefusalContext {
    refused: Mutex<Option<String>>,
    ssl_failures: Mutex<(u32, Option<String>)>,
}

impl ClientContext for RefusalContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        if is_refused_credentials(code) {
            if let Ok(mut refused) = self.refused.lock() {
                refused.get_or_insert_with(|| format!("{error}: {reason}"));
            }
        } else if code == Some(RDKafkaErrorCode::SSL) {
            if let Ok(mut ssl) = self.ssl_failures.lock() {
                ssl.0 += 1;
                ssl.1.get_or_insert_with(|| format!("{error}: {reason}"));
            }
        } else {
            log_client_error(&error, reason);
        }
    }
}

impl RefusalContext {
    fn refusal(&self) -> Option<String> {
        if let Some(refused) = self.refused.lock().ok().and_then(|r| r.clone()) {
            return Some(refused);
        }
        let ssl = self.ssl_failures.lock().ok()?;
        (ssl.0 >= SSL_FAILURES_REFUSED)
            .then(|| ssl.1.clone())
            .flatten()
    }
}

impl rdkafka::consumer::ConsumerContext for RefusalContext {}

/// Connects to the cluster once before a command starts its work, so that a configuration the
/// broker refuses (a wrong SASL user, password or mechanism; TLS handshakes that keep failing,
/// e.g. a certificate that does not verify) stops the command at once with a message that names
/// the cause, where the clients themselves would retry for ever and only log. A broker that does
/// not answer within `wait`, or `stop` being set, is not an error: it is logged and the clients
/// wait for the broker as always. (Authorization is not checked here: a missing ACL shows up as
/// the error of the topic or group it concerns.)
///
/// # Errors
/// [`Error::Config`] naming the refusal and the properties to check.
pub fn check_connection(
    topology: &Topology,
    wait: Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let mut config = base_config(topology);
    // Our own context logs what is not a refusal; librdkafka's log lines would repeat it.
    config.set_log_level(RDKafkaLogLevel::Critical);
    let client: rdkafka::consumer::BaseConsumer<RefusalContext> =
        config.create_with_context(RefusalContext::default())?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        let answer = client.fetch_metadata(None, Duration::from_secs(2));
        // Error events reach the context only when the client's queue is served.
        for _ in 0..10 {
            if client.poll(Duration::from_millis(10)).is_none() {
                break;
            }
        }
        if let Some(refusal) = client.context().refusal() {
            let protocol = topology
                .kafka
                .properties
                .get("security.protocol")
                .map_or("PLAINTEXT", String::as_str);
            let user = topology
                .kafka
                .properties
                .get("sasl.username")
                .map_or("(none)", String::as_str);
            return Err(Error::Config(format!(
                "the broker at {} refused the connection ({refusal}); check security.protocol \
                 ({protocol}), sasl.mechanisms, sasl.username ({user}), sasl.password \
                 (SHELFSYNC_KAFKA_SASL_PASSWORD) and ssl.ca.location",
                topology.kafka.bootstrap_servers
            )));
        }
        match answer {
            Ok(_) => return Ok(()),
            Err(e)
                if std::time::Instant::now() >= deadline
                    || stop.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                warn!(error = %e, bootstrap = %topology.kafka.bootstrap_servers, "the broker does not answer yet; starting anyway, the clients keep retrying");
                return Ok(());
            }
            Err(_) => {}
        }
    }
}
