//! The set-up every broker test shares: a broker, a topology file with its topics created, and
//! helpers to produce the scenario's input, start `shelfsync run` and read outputs back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use shelfsync_schemas::avro;
use shelfsync_schemas::{ChannelAvailability, OrderStatus, OrderStatusCode, ValidatedOrder};
use shelfsync_topology::{Stage, TopicId, Topology};

use crate::kafka_io::{read_topic, run_cli, PipelineProcess, Record, TestProducer};
use crate::scenario::{topology_toml, Expected, InputRecord, Model};

/// Writes `toml` to `dir/topology.toml`, loads it, and creates its topics with
/// `<bin> topics create`: every broker test's first step.
pub fn create_topology(bin: &Path, dir: &Path, toml: &str) -> Result<(PathBuf, Topology)> {
    let topology_path = dir.join("topology.toml");
    std::fs::write(&topology_path, toml)?;
    let topology = Topology::load(&topology_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    run_cli(
        bin,
        &[
            "topics",
            "create",
            "--topology",
            topology_path.to_str().context("path")?,
        ],
    )?;
    Ok((topology_path, topology))
}
use crate::Broker;

/// A broker with the test topology's topics created, and a temp dir for state and logs.
pub struct Setup {
    /// The broker.
    pub broker: Broker,
    /// State dirs, logs and the topology file live here.
    pub dir: tempfile::TempDir,
    /// The topology file.
    pub topology_path: PathBuf,
    /// The parsed topology.
    pub topology: Topology,
    bin: PathBuf,
}

impl Setup {
    /// Starts a broker and creates the topics of [`topology_toml`] with `bin topics create`.
    ///
    /// # Errors
    /// When the broker does not start or topic creation fails.
    pub fn new(bin: &str, app: &str, partitions: i32) -> Result<Self> {
        Self::with_toml(bin, app, partitions, |toml| toml)
    }

    /// As [`Setup::new`], with the topology text of [`topology_toml`] changed by `edit` first.
    ///
    /// # Errors
    /// When the broker does not start, the topology does not load or topic creation fails.
    pub fn with_toml(
        bin: &str,
        app: &str,
        partitions: i32,
        edit: impl FnOnce(String) -> String,
    ) -> Result<Self> {
        let broker = Broker::start()?;
        let dir = tempfile::Builder::new()
            .prefix("shelfsync-test-")
            .disable_cleanup(crate::broker::keep_test_dirs())
            .tempdir()?;
        if crate::broker::keep_test_dirs() {
            eprintln!(
                "keeping {} and {}",
                dir.path().display(),
                broker.dir().display()
            );
        }
        let (topology_path, topology) = create_topology(
            Path::new(bin),
            dir.path(),
            &edit(topology_toml(&broker.bootstrap(), app, partitions)),
        )?;
        Ok(Self {
            broker,
            dir,
            topology_path,
            topology,
            bin: PathBuf::from(bin),
        })
    }

    /// Starts `shelfsync run` with state dir and log named after `state`.
    ///
    /// # Errors
    /// When the process cannot be spawned.
    pub fn start(&self, state: &str) -> Result<PipelineProcess> {
        self.start_with_env(state, &[])
    }

    /// As [`Setup::start`], with extra environment variables for the process.
    ///
    /// # Errors
    /// When the process cannot be spawned.
    pub fn start_with_env(&self, state: &str, env: &[(&str, &str)]) -> Result<PipelineProcess> {
        PipelineProcess::start_with_env(
            &self.bin,
            &self.topology_path,
            &self.dir.path().join(state),
            &self.log_path(state),
            env,
        )
    }

    /// The log file of the process started with `state`.
    pub fn log_path(&self, state: &str) -> PathBuf {
        self.dir.path().join(format!("{state}.log"))
    }

    /// The topic name of a logical topic.
    pub fn topic(&self, id: TopicId) -> String {
        self.topology.topic_name(id)
    }

    /// Produces `records` and waits for their acknowledgement.
    ///
    /// # Errors
    /// On produce errors.
    pub fn produce(&self, records: &[InputRecord]) -> Result<()> {
        let p = TestProducer::new(&self.broker.bootstrap())?;
        for r in records {
            p.send(
                &self.topic(r.input.topic()),
                r.key.as_deref(),
                &r.value,
                r.timestamp,
            )?;
        }
        p.flush()
    }

    /// Produces `events` as a day arrives live: 10 at a time, 40 ms apart. (A burst into
    /// idle sources is applied in arrival order, not event-time order: see the README's
    /// guarantees.)
    ///
    /// # Errors
    /// On produce errors.
    pub fn feed_live(&self, events: &[InputRecord]) -> Result<()> {
        for chunk in events.chunks(10) {
            self.produce(chunk)?;
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        Ok(())
    }

    /// The models of the first `half` events and of all `events`, for tests that run a day in
    /// two halves with something in between.
    ///
    /// # Errors
    /// When the model fails on a record.
    pub fn models_of_halves(
        &self,
        events: &[InputRecord],
        half: usize,
    ) -> Result<(Expected, Expected)> {
        let (mut first, mut whole) = (Model::new(&self.topology), Model::new(&self.topology));
        for (i, e) in events.iter().enumerate() {
            if i < half {
                first.feed(e)?;
            }
            whole.feed(e)?;
        }
        Ok((first.expected, whole.expected))
    }

    /// Starts `shelfsync run` with state `state`, feeds `events` live, waits until the outputs
    /// equal `expected` and stops it cleanly.
    ///
    /// # Errors
    /// When the outputs differ after `wait`, or the process does not stop cleanly.
    pub fn run_until_model(
        &self,
        state: &str,
        events: &[InputRecord],
        expected: &Expected,
        wait: std::time::Duration,
    ) -> Result<()> {
        let p = self.start(state)?;
        self.wait_for_tasks(&p, wait)?;
        self.feed_live(events)?;
        self.wait_for_model(expected, wait, || p.log_tail())?;
        p.stop()
    }

    /// Feeds `events` to a member that just started (after [`Self::wait_for_tasks`]): the first
    /// few one at a time, then live. A burst into sources that are idle ("caught up") is
    /// applied in arrival order rather than event-time order — an ERP record (one hop) can
    /// overtake an order (two hops): see the README's "Event time where paths merge" — which
    /// is not what the tests that use this are about.
    ///
    /// # Errors
    /// On produce errors.
    pub fn feed_after_start(&self, events: &[InputRecord]) -> Result<()> {
        const SLOW_START: usize = 12;
        let slow = events.len().min(SLOW_START);
        for e in &events[..slow] {
            self.produce(std::slice::from_ref(e))?;
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
        self.feed_live(&events[slow..])
    }

    /// Waits until `p` has opened every task of the topology (one per stage and input
    /// partition). What is fed before that (while stores restore) reaches the tasks as a
    /// burst, applied in arrival order rather than event-time order (see the README's
    /// guarantees), so a model of the day no longer holds exactly.
    ///
    /// # Errors
    /// When the tasks are not all open after `wait`.
    pub fn wait_for_tasks(&self, p: &PipelineProcess, wait: std::time::Duration) -> Result<()> {
        let tasks: i32 = Stage::ALL
            .iter()
            .map(|s| self.topology.partitions(s.input()))
            .sum();
        let deadline = std::time::Instant::now() + wait;
        while p.log().matches("task opened").count() < tasks as usize {
            ensure!(
                std::time::Instant::now() < deadline,
                "not all {tasks} tasks opened within {wait:?}\n{}",
                p.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// Fails when an `event_id` appears twice on the status, availability or validated-order
    /// topic.
    ///
    /// # Errors
    /// On a repeated `event_id` or a read error.
    pub fn no_duplicate_outputs(&self) -> Result<()> {
        for id in [
            TopicId::OrderStatus,
            TopicId::Availability,
            TopicId::ValidatedOrders,
        ] {
            let topic = self.topic(id);
            no_duplicate_event_ids(&topic, &read_topic(&self.broker.bootstrap(), &topic)?)?;
        }
        Ok(())
    }

    /// Reads a whole output topic and decodes it.
    ///
    /// # Errors
    /// On read or decode errors.
    pub fn read<T: avro::AvroRecord>(&self, id: TopicId) -> Result<(Vec<Record>, Vec<T>)> {
        let records = read_topic(&self.broker.bootstrap(), &self.topic(id))?;
        let decoded = decode_all(&records)?;
        Ok((records, decoded))
    }
}

/// Decodes every record's value as `T`.
///
/// # Errors
/// When a record has no value or does not decode.
pub fn decode_all<T: avro::AvroRecord>(records: &[Record]) -> Result<Vec<T>> {
    records
        .iter()
        .map(|r| Ok(avro::decode::<T>(r.value.as_deref().context("no value")?)?))
        .collect()
}

/// The latest quantity per (channel, SKU) of an availability stream (highest version wins).
pub fn final_quantities(events: &[ChannelAvailability]) -> BTreeMap<(String, String), i64> {
    let mut out: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for a in events {
        let e = out
            .entry((a.channel.clone(), a.sku.clone()))
            .or_insert((0, 0));
        if a.version > e.1 {
            *e = (a.quantity, a.version);
        }
    }
    out.into_iter().map(|(k, (q, _))| (k, q)).collect()
}

/// Fails when two records of `records` carry the same `shelfsync-event-id` header.
///
/// # Errors
/// On a repeated or missing event id.
pub fn no_duplicate_event_ids(what: &str, records: &[Record]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for r in records {
        let id = r
            .headers
            .get("shelfsync-event-id")
            .context("output without event id header")?;
        ensure!(
            seen.insert(id.clone()),
            "{what}: event_id {id} appears twice"
        );
    }
    Ok(())
}

/// Asserts two sequences are equal, reporting the first difference instead of both lists.
///
/// # Panics
/// When they differ.
pub fn assert_same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: first difference at #{i} of {}/{}:\n got: {:?}\nwant: {:?}",
            got.len(),
            want.len(),
            got[i],
            want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
}

/// Each order's latest revision and its status, from a status stream.
pub fn final_statuses(statuses: &[OrderStatus]) -> BTreeMap<String, (i32, OrderStatusCode)> {
    let mut out: BTreeMap<String, (i32, OrderStatusCode)> = BTreeMap::new();
    for s in statuses {
        let e = out.entry(s.order_key.clone()).or_insert((0, s.status));
        if s.revision > e.0 {
            *e = (s.revision, s.status);
        }
    }
    out
}

/// Checks a multi-partition run against the model where only what is independent of how
/// partitions interleave can be compared record for record.
///
/// A revision whose line results complete after a newer revision's were emitted is dropped by
/// the assemble stage (the ERP never goes back), and which revision completes first depends on
/// how fast each inventory partition runs. So: every order's latest revision has the model's
/// status (none lost), every status and validated order emitted is one the model emitted (none
/// invented, none changed), and every emitted non-rejected status reached the ERP.
///
/// # Errors
/// With the first differences found.
pub fn assert_orders_consistent(
    got_statuses: &[OrderStatus],
    got_validated: &[ValidatedOrder],
    want: &crate::scenario::Expected,
) -> Result<()> {
    let key = |s: &OrderStatus| (s.order_key.clone(), s.revision, format!("{:?}", s.status));
    let want_set: BTreeSet<_> = want.statuses.iter().map(key).collect();
    let invented: Vec<_> = got_statuses
        .iter()
        .map(key)
        .filter(|k| !want_set.contains(k))
        .take(10)
        .collect();
    ensure!(
        invented.is_empty(),
        "statuses the model never emitted: {invented:?}"
    );

    let (got_final, want_final) = (final_statuses(got_statuses), final_statuses(&want.statuses));
    let lost: Vec<_> = want_final
        .iter()
        .filter(|(k, v)| got_final.get(*k) != Some(v))
        .map(|(k, v)| (k, v, got_final.get(k)))
        .take(10)
        .collect();
    ensure!(
        lost.is_empty(),
        "{} of {} orders' latest status differs or is missing (order, want, got): {lost:?}",
        want_final
            .iter()
            .filter(|(k, v)| got_final.get(*k) != Some(v))
            .count(),
        want_final.len()
    );

    let want_validated: BTreeSet<String> =
        want.validated.iter().map(|v| format!("{v:?}")).collect();
    let invented: Vec<_> = got_validated
        .iter()
        .filter(|v| !want_validated.contains(&format!("{v:?}")))
        .take(5)
        .collect();
    ensure!(
        invented.is_empty(),
        "validated orders the model never emitted: {invented:?}"
    );
    let to_erp: BTreeSet<(String, i32)> = got_validated
        .iter()
        .map(|v| (v.order_key.clone(), v.revision))
        .collect();
    let not_sent: Vec<_> = got_statuses
        .iter()
        .filter(|s| {
            !matches!(
                s.status,
                OrderStatusCode::REJECTED | OrderStatusCode::CANCELLED
            )
        })
        .filter(|s| !to_erp.contains(&(s.order_key.clone(), s.revision)))
        .map(|s| (s.order_key.clone(), s.revision))
        .take(10)
        .collect();
    ensure!(
        not_sent.is_empty(),
        "accepted revisions that never reached the ERP: {not_sent:?}"
    );
    Ok(())
}

/// The last status per order and the last quantity per (channel, SKU).
pub type Finals = (
    BTreeMap<String, (i32, OrderStatusCode)>,
    BTreeMap<(String, String), i64>,
);

impl Setup {
    /// The final statuses and availability on the output topics now.
    ///
    /// # Errors
    /// On read or decode errors.
    pub fn finals(&self) -> Result<Finals> {
        let (_, statuses) = self.read::<OrderStatus>(TopicId::OrderStatus)?;
        let (_, avail) = self.read::<ChannelAvailability>(TopicId::Availability)?;
        Ok((final_statuses(&statuses), final_quantities(&avail)))
    }

    /// Waits up to `wait` until nothing of `expected` is lost: every order's latest revision
    /// has a status and every (channel, SKU) an availability. Returns how many statuses and
    /// availabilities equal the time-order model (`equal statuses, statuses, equal
    /// availabilities, availabilities`), which after a failover depends on the order in which
    /// replayed records reach the inventory stage across partitions.
    ///
    /// # Errors
    /// When something is still missing after `wait`, or on read errors.
    pub fn wait_for_nothing_lost(
        &self,
        expected: &Expected,
        wait: std::time::Duration,
        log: impl Fn() -> String,
    ) -> Result<(usize, usize, usize, usize)> {
        let want_statuses = final_statuses(&expected.statuses);
        let want_avail = final_quantities(&expected.availability);
        let deadline = std::time::Instant::now() + wait;
        loop {
            let (got_s, got_a) = self.finals()?;
            let missing_revisions = want_statuses
                .iter()
                .filter(|(k, (rev, _))| got_s.get(*k).map(|(r, _)| r) != Some(rev))
                .count();
            let missing_avail = want_avail
                .keys()
                .filter(|k| !got_a.contains_key(*k))
                .count();
            if missing_revisions == 0 && missing_avail == 0 {
                return Ok((
                    want_statuses
                        .iter()
                        .filter(|(k, v)| got_s.get(*k) == Some(v))
                        .count(),
                    want_statuses.len(),
                    want_avail
                        .iter()
                        .filter(|(k, v)| got_a.get(*k) == Some(v))
                        .count(),
                    want_avail.len(),
                ));
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "{missing_revisions} of {} orders lack their latest revision's status and {missing_avail} of {} (channel, SKU) their availability\n{}",
                want_statuses.len(),
                want_avail.len(),
                log()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }

    /// Waits up to `wait` until the final statuses and availability equal `expected`'s; on
    /// timeout, fails with how many are equal, up to 10 differences and `log()`.
    ///
    /// # Errors
    /// When they still differ after `wait`, or on read errors.
    pub fn wait_for_model(
        &self,
        expected: &Expected,
        wait: std::time::Duration,
        log: impl Fn() -> String,
    ) -> Result<()> {
        let want = (
            final_statuses(&expected.statuses),
            final_quantities(&expected.availability),
        );
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got = self.finals()?;
            if got == want {
                return Ok(());
            }
            let differing: Vec<String> = want
                .0
                .iter()
                .filter(|(k, v)| got.0.get(*k) != Some(v))
                .map(|(k, v)| format!("{k}: want {v:?}, got {:?}", got.0.get(k)))
                .chain(
                    want.1
                        .iter()
                        .filter(|(k, v)| got.1.get(*k) != Some(v))
                        .map(|(k, v)| format!("{k:?}: want {v}, got {:?}", got.1.get(k))),
                )
                .take(10)
                .collect();
            ensure!(
                std::time::Instant::now() < deadline,
                "results differ from the model: {} of {} statuses, {} of {} availabilities equal\n{differing:#?}\n{}",
                want.0.iter().filter(|(k, v)| got.0.get(*k) == Some(v)).count(),
                want.0.len(),
                want.1.iter().filter(|(k, v)| got.1.get(*k) == Some(v)).count(),
                want.1.len(),
                log()
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}
