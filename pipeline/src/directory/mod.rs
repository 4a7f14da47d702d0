//! The instance directory: which running instance holds which task, and where its HTTP
//! endpoints answer, so that the availability query of any instance can name (and ask) the
//! instance that owns a SKU.
//!
//! Kafka Streams solves this with `application.server` carried in the group protocol's
//! user data; librdkafka has no custom assignors, and Apache Kafka's `DescribeGroups` would
//! name members but not where their HTTP endpoints are. So every `shelfsync run` instance announces itself on a
//! compacted topic of its own, `<application_id>-instances` (one partition, key = instance
//! id, value = an Avro [`InstanceAnnouncement`]):
//!
//! - on every change of its tasks (assigned, opened, closed) and every `interval` otherwise,
//!   it writes its id, advertised URL, the tasks it holds and since when;
//! - on a clean stop it writes a tombstone;
//! - every instance reads the whole topic from the beginning and keeps the latest announcement
//!   per instance ([`Directory`]).
//!
//! The owner of a task is the live instance (announced within its `ttl_ms`) whose claim on it is
//! the latest: when an instance dies without a tombstone its last announcement still lists its
//! tasks until the TTL passes, but the instance the group gave them to claims them later.
//! The directory is advisory — it points the query at an instance, and that instance answers
//! only for tasks it really owns (else it says so), so a stale entry costs a retry, never a
//! wrong number. It never affects processing: the engine does not read it.
//!
//! Nothing authenticates the topic's writers, so the directory believes only announcements
//! that look like what an instance writes ([`validate`]: the key is the instance id, the URL a
//! bare `http(s)://host[:port]`, the TTL at most 10 minutes, no claim dated in the future, task
//! names of known stages, bounded sizes); the others are ignored, logged once per instance id
//! and counted (`shelfsync_directory_rejected_total`). The availability query forwards only to
//! owners whose host `--peer-allow` permits ([`PeerAllow`]) and never passes a peer's body on.
//!
//! Files: [`validate`] (what an announcement must look like), [`peer`] (advertised URLs and the
//! forwarding allow-list).

pub mod peer;
pub mod validate;

pub use peer::{PeerAllow, PeerUrl};
pub use validate::Rejected;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::now_ms;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use shelfsync_schemas::avro::{self, Framing};
use shelfsync_schemas::{InstanceAnnouncement, TaskClaim};
use shelfsync_topology::{TopicId, Topology};
use tracing::{debug, info, warn};

use crate::engine::EngineStatus;
use crate::error::{Error, Result};
use crate::kafka;
use crate::metrics as m;

/// How often an instance re-announces itself when nothing changed.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// An announcement is valid for this many intervals without a newer one.
pub const TTL_INTERVALS: u32 = 3;
/// The shortest announce interval (a shorter TTL would flap on a busy broker).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest announce interval: the TTL (3 × 60 s) stays well under the 10 minutes other
/// instances believe ([`validate::MAX_TTL_MS`]).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// How many instance ids get their own warning for an invalid announcement; past that, one
/// warning every 30 s for all of them (a hostile writer can invent any number of ids).
const WARN_ONCE_IDS: usize = 1000;
/// How long a clean stop waits for its tombstone to be acknowledged.
const TOMBSTONE_WAIT: Duration = Duration::from_secs(2);
/// Dead instances are forgotten after this many TTLs.
const PRUNE_AFTER_TTLS: i64 = 20;

/// Who this instance is to the others: its id and the base URL of its HTTP endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The instance id (key of its announcements).
    pub instance_id: String,
    /// Base URL of its HTTP endpoints as other instances reach it, without a trailing `/`.
    pub http_url: String,
}

impl Identity {
    /// The identity from `--instance-id` and `--advertised-url` when given, else derived from
    /// the host name and the address the HTTP server is bound to: id `<host>:<port>` (two
    /// instances on one host differ by port), URL `http://<ip>:<port>`, or
    /// `http://<host>:<port>` when bound to every interface (`0.0.0.0`).
    ///
    /// # Errors
    /// [`Error::Config`] when the advertised URL is not a bare `http(s)://host[:port]` URL
    /// ([`PeerUrl`]), or the instance id is empty, longer than 253 characters or not printable
    /// ASCII.
    pub fn resolve(
        instance_id: Option<String>,
        advertised_url: Option<String>,
        bound: SocketAddr,
    ) -> Result<Self> {
        let host = hostname();
        let instance_id = instance_id.unwrap_or_else(|| format!("{host}:{}", bound.port()));
        // It travels in an HTTP header (`x-shelfsync-forwarded-by`, `x-shelfsync-answered-by`).
        if instance_id.is_empty() || !instance_id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::Config(format!(
                "--instance-id (SHELFSYNC_INSTANCE_ID) {instance_id:?}: expected printable ASCII without spaces, e.g. the pod name"
            )));
        }
        if instance_id.len() > validate::MAX_ID_LEN {
            return Err(Error::Config(format!(
                "--instance-id (SHELFSYNC_INSTANCE_ID): longer than {} characters",
                validate::MAX_ID_LEN
            )));
        }
        // Parsed as strictly as the others parse it (validate.rs), so that they believe it.
        let (url, flag) = match advertised_url {
            Some(url) => (url, "--advertised-url (SHELFSYNC_ADVERTISED_URL)"),
            None if bound.ip().is_unspecified() => (
                format!("http://{host}:{}", bound.port()),
                "the URL derived from the host name (set --advertised-url)",
            ),
            None => (
                format!("http://{bound}"),
                "--http-addr (SHELFSYNC_HTTP_ADDR)",
            ),
        };
        let http_url = PeerUrl::parse(&url)
            .map_err(|why| {
                Error::Config(format!(
                    "{flag} {url:?}: {why}; expected http://host:port or https://host:port"
                ))
            })?
            .to_string();
        Ok(Self {
            instance_id,
            http_url,
        })
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `localhost`); in a
/// Kubernetes StatefulSet, the pod name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// The instance the directory names for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Its id.
    pub instance_id: String,
    /// Base URL of its HTTP endpoints.
    pub http_url: String,
    /// When it took the task, epoch ms.
    pub since: i64,
    /// Whether it was still opening the task (restoring its state) at its last announcement.
    pub opening: bool,
    /// When it last announced itself, epoch ms.
    pub announced_at: i64,
}

/// The latest announcement of every instance, as read from `<application_id>-instances`.
#[derive(Debug, Default)]
pub struct Directory {
    instances: RwLock<HashMap<String, InstanceAnnouncement>>,
    /// True once the reader has caught up with the topic's end at least once.
    synced: AtomicBool,
}

impl Directory {
    /// Applies one record of the topic, read under `key` at `now` (epoch ms), in log order (one
    /// partition, idempotent producer: an instance's records are in the order it wrote them):
    /// a valid announcement replaces the instance's previous one, a tombstone (`None`) removes
    /// it, an invalid announcement changes nothing (its URL is kept canonical:
    /// `scheme://host[:port]`).
    ///
    /// # Errors
    /// [`Rejected`] when the announcement breaks a rule of [`validate`].
    pub fn apply(
        &self,
        key: &str,
        announcement: Option<InstanceAnnouncement>,
        now: i64,
    ) -> std::result::Result<(), Rejected> {
        let announcement = match announcement {
            Some(mut a) => {
                validate::validate(key, &a, now)?;
                if let Ok(url) = PeerUrl::parse(&a.http_url) {
                    a.http_url = url.to_string();
                }
                Some(a)
            }
            None => None,
        };
        let Ok(mut instances) = self.instances.write() else {
            return Ok(());
        };
        match announcement {
            None => {
                instances.remove(key);
            }
            Some(a) => {
                instances.insert(key.to_string(), a);
            }
        }
        Ok(())
    }

    /// Forgets instances silent for more than `PRUNE_AFTER_TTLS` times their TTL (killed ones
    /// never write a tombstone).
    pub fn prune(&self, now: i64) {
        if let Ok(mut instances) = self.instances.write() {
            instances.retain(|_, a| {
                now.saturating_sub(a.announced_at) <= a.ttl_ms.saturating_mul(PRUNE_AFTER_TTLS)
            });
        }
    }

    /// The live instance holding `task` at `now` (epoch ms): of the instances whose last
    /// announcement lists it, is younger than its TTL and whose URL `reachable` accepts, the one
    /// that took it last. (An instance the caller would not ask cannot hide one it would.)
    pub fn owner(
        &self,
        task: &str,
        now: i64,
        reachable: impl Fn(&PeerUrl) -> bool,
    ) -> Option<Owner> {
        let instances = self.instances.read().ok()?;
        instances
            .values()
            .filter(|a| is_live(a, now))
            .filter(|a| PeerUrl::parse(&a.http_url).is_ok_and(|u| reachable(&u)))
            .filter_map(|a| {
                let claim = a.tasks.iter().find(|c| c.task == task)?;
                Some(Owner {
                    instance_id: a.instance_id.clone(),
                    http_url: a.http_url.clone(),
                    since: claim.since,
                    opening: claim.opening,
                    announced_at: a.announced_at,
                })
            })
            .max_by_key(|o| (o.since, o.announced_at, o.instance_id.clone()))
    }

    /// The live instances at `now`: id → advertised URL.
    pub fn live(&self, now: i64) -> BTreeMap<String, String> {
        self.instances
            .read()
            .map(|i| {
                i.values()
                    .filter(|a| is_live(a, now))
                    .map(|a| (a.instance_id.clone(), a.http_url.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The live instances' latest announcements at `now`, by instance id.
    pub fn snapshot(&self, now: i64) -> Vec<InstanceAnnouncement> {
        let mut live: Vec<InstanceAnnouncement> = self
            .instances
            .read()
            .map(|i| i.values().filter(|a| is_live(a, now)).cloned().collect())
            .unwrap_or_default();
        live.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        live
    }

    /// Whether the reader has read the topic to its end at least once (before that an unknown
    /// owner may just not have been read yet).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }
}

fn is_live(a: &InstanceAnnouncement, now: i64) -> bool {
    now.saturating_sub(a.announced_at) <= a.ttl_ms
}

/// What this instance announces: its held tasks, each with the time it first saw it held.
#[derive(Debug)]
struct Announcer {
    me: Identity,
    ttl_ms: i64,
    since: BTreeMap<String, i64>,
}

impl Announcer {
    fn announcement(&mut self, held: &[(String, bool)], now: i64) -> InstanceAnnouncement {
        self.since
            .retain(|task, _| held.iter().any(|(t, _)| t == task));
        let tasks = held
            .iter()
            .map(|(task, opening)| TaskClaim {
                task: task.clone(),
                since: *self.since.entry(task.clone()).or_insert(now),
                opening: *opening,
            })
            .collect();
        InstanceAnnouncement {
            instance_id: self.me.instance_id.clone(),
            http_url: self.me.http_url.clone(),
            announced_at: now,
            ttl_ms: self.ttl_ms,
            tasks,
        }
    }
}

/// The running directory: a thread that announces this instance and reads everyone's
/// announcements. [`DirectoryService::shutdown`] (or drop) writes the tombstone and stops it.
#[derive(Debug)]
pub struct DirectoryService {
    directory: Arc<Directory>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DirectoryService {
    /// The directory the thread keeps up to date.
    pub fn directory(&self) -> Arc<Directory> {
        Arc::clone(&self.directory)
    }

    /// Announces the stop (a tombstone, at most 5 s) and joins the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the instance directory thread panicked");
            }
        }
    }
}

impl Drop for DirectoryService {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts announcing `me` with the tasks of `status` every `interval` (clamped to
/// [`MIN_INTERVAL`]`..=`[`MAX_INTERVAL`]; and on every change) and reading
/// `<application_id>-instances` into the returned service's [`Directory`].
///
/// Broker trouble never stops it: a missing topic or an unreachable broker is logged (at most
/// every 30 s) and retried; the pipeline does not depend on it.
///
/// # Errors
/// [`Error::Kafka`] when librdkafka refuses the client configuration; [`Error::Bug`] when the
/// thread cannot start.
pub fn start(
    topology: &Topology,
    me: Identity,
    status: Arc<EngineStatus>,
    interval: Duration,
) -> Result<DirectoryService> {
    let topic = topology.topic_name(TopicId::Instances);
    // Never let a first announcement auto-create the topic with the broker's defaults (delete
    // policy, several partitions): `topics create` makes it compacted with one partition.
    let producer: BaseProducer = kafka::producer_config(topology)
        .set("allow.auto.create.topics", "false")
        .create()?;
    let mut consumer_config = kafka::base_config(topology);
    // librdkafka refuses `assign` without a group id; this consumer never joins the group
    // (no `subscribe`) and never commits, it only reads the partition from its start.
    consumer_config
        .set("group.id", format!("{}-directory", topology.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    let consumer: BaseConsumer = consumer_config.create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let directory = Arc::new(Directory::default());
    let stop = Arc::new(AtomicBool::new(false));
    let interval = interval.clamp(MIN_INTERVAL, MAX_INTERVAL);
    let ttl = interval * TTL_INTERVALS;
    let reach = if ["://127.", "://localhost", "://[::1]"]
        .iter()
        .any(|l| me.http_url.contains(l))
    {
        "this host only (set --advertised-url for other hosts)"
    } else {
        "other hosts"
    };
    info!(instance = %me.instance_id, url = %me.http_url, reach, topic, "announcing this instance in the directory");
    let thread = {
        let (directory, stop) = (Arc::clone(&directory), Arc::clone(&stop));
        let announcer = Announcer {
            me,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            since: BTreeMap::new(),
        };
        let worker = Worker {
            topic,
            producer,
            consumer,
            directory,
            status,
            announcer,
            interval,
            warned: RefCell::new(Warned {
                ids: HashSet::new(),
                next: Instant::now(),
            }),
        };
        std::thread::Builder::new()
            .name("shelfsync-directory".into())
            .spawn(move || worker.run(&stop))
            .map_err(|e| Error::Bug(format!("spawn the directory thread: {e}")))?
    };
    Ok(DirectoryService {
        directory,
        stop,
        thread: Some(thread),
    })
}

struct Worker {
    topic: String,
    producer: BaseProducer,
    consumer: BaseConsumer,
    directory: Arc<Directory>,
    status: Arc<EngineStatus>,
    announcer: Announcer,
    interval: Duration,
    warned: RefCell<Warned>,
}

/// Whom the directory thread has warned about invalid announcements.
struct Warned {
    /// Instance ids already warned about (at most [`WARN_ONCE_IDS`]).
    ids: HashSet<String>,
    /// When the next warning may go out once `ids` is full.
    next: Instant,
}

impl Worker {
    fn run(mut self, stop: &AtomicBool) {
        let mut seen_changes = u64::MAX;
        let mut next_announce = Instant::now();
        let mut next_warning = Instant::now();
        let mut next_sync_check = Instant::now();
        let mut next_prune = Instant::now();
        let key = self.announcer.me.instance_id.clone();
        while !stop.load(Ordering::SeqCst) {
            let changes = self.status.changes.load(Ordering::SeqCst);
            if changes != seen_changes || Instant::now() >= next_announce {
                let a = self
                    .announcer
                    .announcement(&self.status.held_tasks(), now_ms());
                match avro::encode(&a, Framing::SingleObject) {
                    Ok(value) => {
                        let record = BaseRecord::<str, [u8]>::to(&self.topic)
                            .partition(0)
                            .key(key.as_str())
                            .payload(&value);
                        if let Err((e, _)) = self.producer.send(record) {
                            if Instant::now() >= next_warning {
                                warn!(error = %e, topic = %self.topic, "could not announce this instance; retrying");
                                next_warning = Instant::now() + Duration::from_secs(30);
                            }
                        }
                    }
                    Err(e) => warn!(error = %e, "could not encode the instance announcement"),
                }
                seen_changes = changes;
                next_announce = Instant::now() + self.interval;
            }
            self.producer.poll(Duration::ZERO);
            self.read(Duration::from_millis(200), stop, &mut next_warning);
            if Instant::now() >= next_prune {
                self.directory.prune(now_ms());
                next_prune = Instant::now() + Duration::from_secs(60);
            }
            if !self.directory.is_synced() && Instant::now() >= next_sync_check {
                self.check_synced();
                next_sync_check = Instant::now() + Duration::from_secs(1);
            }
            metrics::gauge!(m::DIRECTORY_INSTANCES).set(self.directory.live(now_ms()).len() as f64);
        }
        // A clean stop: say so, so that no query is pointed here for the TTL.
        let tombstone = BaseRecord::<str, [u8]>::to(&self.topic)
            .partition(0)
            .key(key.as_str());
        match self.producer.send(tombstone) {
            Ok(()) => {
                // Bounded tightly: a stop during a broker outage must not wait on it (the
                // engine's own wait is `--shutdown-timeout`).
                if let Err(e) = self.producer.flush(TOMBSTONE_WAIT) {
                    warn!(error = %e, "could not announce this instance's stop; others drop it after its TTL");
                }
            }
            Err((e, _)) => {
                warn!(error = %e, "could not announce this instance's stop; others drop it after its TTL")
            }
        }
        debug!("instance directory stopped");
    }

    /// Applies what the consumer has, waiting at most `timeout` for the first record and
    /// reading for about `timeout` in all (a long catch-up goes on in the next rounds, so the
    /// thread still announces and notices `stop`).
    fn read(&self, timeout: Duration, stop: &AtomicBool, next_warning: &mut Instant) {
        let until = Instant::now() + timeout;
        let mut wait = timeout;
        while let Some(result) = self.consumer.poll(wait) {
            wait = Duration::ZERO;
            match result {
                Ok(msg) => self.apply(&msg),
                Err(e) => {
                    if Instant::now() >= *next_warning {
                        warn!(error = %e, topic = %self.topic, "cannot read the instance directory; retrying (create it with `shelfsync topics create`)");
                        *next_warning = Instant::now() + Duration::from_secs(30);
                    }
                    return;
                }
            }
            if stop.load(Ordering::SeqCst) || Instant::now() >= until {
                return;
            }
        }
    }

    fn apply(&self, msg: &rdkafka::message::BorrowedMessage<'_>) {
        let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            self.reject(
                "?",
                msg.offset(),
                &Rejected {
                    reason: "key",
                    detail: "a record without a UTF-8 key".into(),
                },
            );
            return;
        };
        let result = match msg.payload() {
            None => self.directory.apply(key, None, now_ms()),
            Some(value) if value.len() > validate::MAX_RECORD_BYTES => Err(Rejected {
                reason: "oversized",
                detail: format!(
                    "{} bytes (at most {})",
                    value.len(),
                    validate::MAX_RECORD_BYTES
                ),
            }),
            Some(value) => match avro::decode::<InstanceAnnouncement>(value) {
                Ok(a) => self.directory.apply(key, Some(a), now_ms()),
                Err(e) => Err(Rejected {
                    reason: "undecodable",
                    detail: e.to_string(),
                }),
            },
        };
        if let Err(rejected) = result {
            self.reject(key, msg.offset(), &rejected);
        }
    }

    /// Counts an ignored record and warns about it, once per instance id for the first
    /// [`WARN_ONCE_IDS`] ids, then at most every 30 s for further ids.
    fn reject(&self, key: &str, offset: i64, rejected: &Rejected) {
        metrics::counter!(m::DIRECTORY_REJECTED, "reason" => rejected.reason).increment(1);
        // The key is chosen by whoever wrote the record: log a bounded excerpt, escaped.
        let instance: String = key.chars().take(64).collect();
        let mut warned = self.warned.borrow_mut();
        let warn_now = if warned.ids.contains(&instance) {
            false
        } else if warned.ids.len() < WARN_ONCE_IDS {
            warned.ids.insert(instance.clone());
            true
        } else if Instant::now() >= warned.next {
            warned.next = Instant::now() + Duration::from_secs(30);
            true
        } else {
            false
        };
        if warn_now {
            warn!(
                instance = ?instance,
                offset,
                reason = rejected.reason,
                detail = %rejected.detail,
                "invalid instance announcement ignored (further ones of this instance are only counted)"
            );
        }
    }

    /// Marks the directory synced once the reader's position reached the high watermark it
    /// saw when it started.
    fn check_synced(&self) {
        let Ok((_, high)) =
            self.consumer
                .fetch_watermarks(&self.topic, 0, Duration::from_millis(500))
        else {
            return;
        };
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|tpl| match tpl.find_partition(&self.topic, 0)?.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .unwrap_or(0);
        if high == 0 || position >= high {
            self.directory.synced.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests;
