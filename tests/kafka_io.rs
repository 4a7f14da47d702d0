//! Producing test input to, and reading output from, a real broker; running `shelfsync` as a
//! child process.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Timestamp (ms).
    pub timestamp: Option<i64>,
    /// Headers as UTF-8 (lossy).
    pub headers: BTreeMap<String, String>,
}

/// An idempotent test producer.
pub struct TestProducer {
    producer: BaseProducer,
}

impl TestProducer {
    /// Connects to `bootstrap`.
    ///
    /// # Errors
    /// When librdkafka refuses the config.
    pub fn new(bootstrap: &str) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()?;
        Ok(Self { producer })
    }

    /// Enqueues one record (waits while the queue is full).
    ///
    /// # Errors
    /// On a produce error other than a full queue.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: i64,
    ) -> Result<()> {
        let mut rec: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(value).timestamp(timestamp);
        if let Some(k) = key {
            rec = rec.key(k);
        }
        send_waiting(&self.producer, rec)
    }

    /// Waits until everything sent is acknowledged.
    ///
    /// # Errors
    /// When the broker does not acknowledge within a minute.
    pub fn flush(&self) -> Result<()> {
        self.producer.flush(Duration::from_secs(60))?;
        Ok(())
    }
}

/// Enqueues `rec` on `producer`, serving delivery reports while its queue is full.
///
/// # Errors
/// On a produce error other than a full queue.
pub fn send_waiting(producer: &BaseProducer, mut rec: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                rec = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Reads every record of `topic` (all partitions) from the beginning to the current end.
///
/// # Errors
/// When the topic cannot be read.
pub fn read_topic(bootstrap: &str, topic: &str) -> Result<Vec<Record>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "shelfsync-test-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut out = Vec::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(low))?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if Instant::now() > deadline {
                bail!("reading {topic}[{p}] up to {high} timed out");
            }
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_string(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        topic: topic.to_string(),
                        partition: p,
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        timestamp: m.timestamp().to_millis(),
                        headers,
                    });
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                Some(Err(e)) => bail!("reading {topic}[{p}]: {e}"),
                None => {}
            }
        }
    }
    Ok(out)
}

/// How many records `topic` holds (sum over partitions of high − low watermark): cheap, no
/// records are read.
///
/// # Errors
/// When the metadata or watermarks cannot be fetched.
pub fn count(bootstrap: &str, topic: &str) -> Result<i64> {
    // A busy test broker may time a request out: try a few times before failing the test.
    let mut last = None;
    for attempt in 0..5u64 {
        match try_count(bootstrap, topic) {
            Ok(n) => return Ok(n),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(500 * (attempt + 1)));
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("count {topic}")))
}

fn try_count(bootstrap: &str, topic: &str) -> Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let mut n = 0;
    for p in md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
    {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
        n += high - low;
    }
    Ok(n)
}

/// Polls `read_topic` until `done` says the records are complete, or `timeout` passes.
///
/// # Errors
/// On read errors, or when `done` never holds (the message says how many records were there).
pub fn wait_for<F: FnMut(&[Record]) -> bool>(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    mut done: F,
) -> Result<Vec<Record>> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = read_topic(bootstrap, topic)?;
        if done(&records) {
            return Ok(records);
        }
        if Instant::now() > deadline {
            bail!(
                "timed out waiting on {topic}: {} records so far",
                records.len()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A `shelfsync run` child process; killed on drop.
pub struct PipelineProcess {
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl PipelineProcess {
    /// Starts `bin run --topology FILE --state-dir DIR`, logging to `log`. Its HTTP endpoints
    /// listen on a free port (`SHELFSYNC_HTTP_ADDR=127.0.0.1:0`), so that processes of tests
    /// running side by side do not fight over the default port.
    ///
    /// # Errors
    /// When the binary cannot be spawned.
    pub fn start(bin: &Path, topology: &Path, state_dir: &Path, log: &Path) -> Result<Self> {
        Self::start_with_env(bin, topology, state_dir, log, &[])
    }

    /// As [`PipelineProcess::start`], with extra environment variables for the child (applied
    /// last, so `("SHELFSYNC_HTTP_ADDR", "127.0.0.1:PORT")` picks the HTTP address).
    ///
    /// # Errors
    /// When the binary cannot be spawned.
    pub fn start_with_env(
        bin: &Path,
        topology: &Path,
        state_dir: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut args = vec![
            OsStr::new("run"),
            OsStr::new("--topology"),
            topology.as_os_str(),
        ];
        args.extend([OsStr::new("--state-dir"), state_dir.as_os_str()]);
        Self::spawn(bin, &args, log, env)
    }

    /// Starts `bin push --topology FILE` (the marketplace push sink), logging to `log`, with
    /// extra environment variables (credentials, `SHELFSYNC_HTTP_ADDR`).
    ///
    /// # Errors
    /// When the binary cannot be spawned.
    pub fn start_push(
        bin: &Path,
        topology: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let args = [
            OsStr::new("push"),
            OsStr::new("--topology"),
            topology.as_os_str(),
        ];
        Self::spawn(bin, &args, log, env)
    }

    /// Spawns `bin args…` with debug logs appended to `log`, the HTTP endpoints on a free port,
    /// and `env` applied last.
    fn spawn(bin: &Path, args: &[&OsStr], log: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(bin)
            .args(args)
            .env("SHELFSYNC_LOG", "info,shelfsync_pipeline=debug")
            .env("SHELFSYNC_HTTP_ADDR", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
            started: Instant::now(),
        })
    }

    /// When the process was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sends SIGTERM and waits for a clean exit (bounded).
    ///
    /// # Errors
    /// When the process does not exit in time or exits non-zero.
    pub fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("shelfsync exited with {status}; log:\n{}", self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "shelfsync did not stop within 60 s; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `wait` for the process to exit; its exit status, or
    /// `None` when it is still running.
    ///
    /// # Errors
    /// When the signal cannot be sent or the process not waited for.
    pub fn terminate(&mut self, wait: Duration) -> Result<Option<std::process::ExitStatus>> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log of the process.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// SIGKILLs the process (a crash).
    ///
    /// # Errors
    /// When the kill fails.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The last 80 lines of the process's log.
    pub fn log_tail(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

impl Drop for PipelineProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bin` with `args` to completion.
///
/// # Errors
/// When it exits non-zero (with its output in the message).
pub fn run_cli(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin).args(args).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "{} {:?} failed ({}):\n{text}",
            bin.display(),
            args,
            out.status
        );
    }
    Ok(text)
}

/// A plain HTTP/1.1 GET to a local endpoint: `(status, whole response text)` (status line,
/// headers and body; [`http_body`] gives the body).
///
/// # Errors
/// When the connection fails or the answer has no status line.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status line in {text:?}"))?;
    Ok((code, text))
}

/// The body of a response read by [`http_get`].
pub fn http_body(text: &str) -> &str {
    text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
