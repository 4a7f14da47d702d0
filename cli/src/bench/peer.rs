//! The Kafka Streams peer (`benches/peers/kafka-streams/`, a Maven project): built once per
//! version of its sources into `~/.cache/shelfsync/peers/kafka-streams-<hash>/`, configured
//! from the topology's inventory settings, and run as a `java` child process whose stdout
//! reports its state and progress (`state RUNNING`, `progress <taken> <refused>`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shelfsync_topology::{TopicId, Topology};

/// A peer system the bench can compare the inventory stage with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum PeerKind {
    /// Apache Kafka Streams 4.4.0 (Processor API, persistent RocksDB store), under
    /// `at_least_once` and `exactly_once_v2`.
    KafkaStreams,
}

/// `processing.guarantee` of a Kafka Streams run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guarantee {
    AtLeastOnce,
    ExactlyOnceV2,
}

impl Guarantee {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::AtLeastOnce => "at_least_once",
            Self::ExactlyOnceV2 => "exactly_once_v2",
        }
    }
}

/// The peer's sources in this checkout: `benches/peers/kafka-streams` (or
/// `SHELFSYNC_PEER_DIR`), next to the schemas it reads.
fn source_dir() -> PathBuf {
    std::env::var_os("SHELFSYNC_PEER_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/peers/kafka-streams"),
        PathBuf::from,
    )
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                files_under(&path, out)?;
            }
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// A built peer: the classpath to run it with.
#[derive(Debug, Clone)]
pub(super) struct PeerBuild {
    classpath: String,
}

/// Builds the peer unless a build of the same sources (pom, Java files and the Avro schemas it
/// embeds) is in the cache. Maven runs quietly, in batch mode, with no stdin.
pub(super) fn build() -> anyhow::Result<PeerBuild> {
    let src = source_dir();
    let pom = src.join("pom.xml");
    if !pom.is_file() {
        bail!(
            "the Kafka Streams peer is not at {} (set SHELFSYNC_PEER_DIR to its folder)",
            src.display()
        );
    }
    let mut files = vec![pom.clone()];
    files_under(&src.join("src"), &mut files)?;
    files_under(&src.join("../../../schemas/avro"), &mut files)?;
    files.retain(|f| {
        f.extension()
            .is_some_and(|e| e == "java" || e == "avsc" || e == "xml")
    });
    files.sort();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for f in &files {
        parts.push(
            f.file_name()
                .map(|n| n.as_encoded_bytes().to_vec())
                .unwrap_or_default(),
        );
        parts.push(std::fs::read(f)?);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let hash = format!("{:016x}", shelfsync_schemas::stable_hash128(&refs) as u64);
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    let dir = home.join(format!(".cache/shelfsync/peers/kafka-streams-{hash}"));
    let build = dir.join("build");
    let built = PeerBuild {
        classpath: format!(
            "{}:{}/*",
            build.join("peer.jar").display(),
            build.join("lib").display()
        ),
    };
    if dir.join("built").is_file() {
        eprintln!("stage: Kafka Streams peer cached in {}", dir.display());
        return Ok(built);
    }
    eprintln!(
        "stage: building the Kafka Streams peer (mvn package) into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir)?;
    let began = Instant::now();
    let output = Command::new("mvn")
        .args(["-q", "-B", "-Dstyle.color=never", "-f"])
        .arg(&pom)
        .arg(format!("-Dpeer.build.dir={}", build.display()))
        .arg("package")
        .stdin(Stdio::null())
        .output()
        .context("run mvn (Maven 3 and a JDK 17 must be on PATH)")?;
    if !output.status.success() {
        bail!(
            "mvn package of the Kafka Streams peer failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(dir.join("built"), format!("{}\n", files.len()))?;
    eprintln!("  built in {:.1} s", began.elapsed().as_secs_f64());
    Ok(built)
}

/// The inventory stage's settings as the peer reads them (see `PeerConfig.java`).
pub(super) fn peer_config(topology: &Topology) -> String {
    let c = topology.inventory_config();
    let mut s = String::new();
    let names: Vec<&str> = c.channels.iter().map(|p| p.name.as_str()).collect();
    s.push_str(&format!("channels={}\n", names.join(",")));
    for p in &c.channels {
        let k = format!("channel.{}.", p.name);
        s.push_str(&format!("{k}share_pct={}\n", p.share_pct.0));
        s.push_str(&format!("{k}buffer={}\n", p.buffer));
        if let Some(m) = p.max_qty {
            s.push_str(&format!("{k}max_qty={m}\n"));
        }
        s.push_str(&format!("{k}min_publish={}\n", p.min_publish));
        if let Some(l) = &p.eligible_locations {
            s.push_str(&format!("{k}eligible={}\n", l.join(",")));
        }
        let oversell = match p.oversell_policy {
            shelfsync_operators::OversellPolicy::Reject => "reject",
            shelfsync_operators::OversellPolicy::Backorder => "backorder",
        };
        s.push_str(&format!("{k}oversell={oversell}\n"));
        if let Some(t) = p.soft_hold_ttl_ms {
            s.push_str(&format!("{k}soft_hold_ttl_ms={t}\n"));
        }
        s.push_str(&format!(
            "{k}hard_hold_max_age_ms={}\n",
            p.hard_hold_max_age_ms
        ));
    }
    s.push_str(&format!("soft_hold_ttl_ms={}\n", c.soft_hold_ttl_ms));
    s.push_str(&format!(
        "shipped_line_retention_ms={}\n",
        c.shipped_line_retention_ms
    ));
    s.push_str(&format!("locations={}\n", c.locations.join(",")));
    s
}

/// The application id of the peer on `topology`'s topics (its own consumer group and its own
/// changelog, `<id>-inventory-changelog`).
pub(super) fn application_id(topology: &Topology) -> String {
    format!("{}-ks", topology.application_id)
}

/// What the peer said of its state and restoration (its `state` and `restore-*` lines).
#[derive(Debug, Default)]
struct Said {
    running: bool,
    restores_started: u64,
    restores_ended: u64,
    restored_records: u64,
    /// When the first restoration began and the last one ended.
    first_start: Option<Instant>,
    last_end: Option<Instant>,
    /// When the last of these lines came.
    last: Option<Instant>,
}

/// The peer in a child process; stopped (TERM, then KILL) when dropped.
pub(super) struct PeerProcess {
    child: Child,
    started: Instant,
    taken: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    said: Arc<Mutex<Said>>,
    /// The child's stderr.
    pub(super) log: PathBuf,
}

impl PeerProcess {
    /// Starts the peer on `topology`'s inventory commands, availability and line results.
    pub(super) fn spawn(
        build: &PeerBuild,
        topology: &Topology,
        guarantee: Guarantee,
        dir: &Path,
        name: &str,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config = dir.join(format!("{name}.properties"));
        std::fs::write(&config, peer_config(topology))?;
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new("java");
        cmd.arg("-cp")
            .arg(&build.classpath)
            .arg("dev.shelfsync.peer.Peer")
            .args(["--bootstrap", &topology.kafka.bootstrap_servers])
            .args(["--application-id", &application_id(topology)])
            .args(["--input", &topology.topic_name(TopicId::InventoryCommands)])
            .args([
                "--availability",
                &topology.topic_name(TopicId::Availability),
            ])
            .args(["--line-results", &topology.topic_name(TopicId::LineResults)])
            .args(["--guarantee", guarantee.name()])
            .args(["--threads", "1"])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")));
        // The pipeline's producer settings that shape the bytes on the wire (compression).
        for key in ["compression.type", "linger.ms", "batch.size"] {
            if let Some(v) = topology.kafka.properties.get(key) {
                cmd.args(["--prop", &format!("producer.{key}={v}")]);
            }
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start the Kafka Streams peer (`java` must be on PATH)")?;
        let taken = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let said = Arc::new(Mutex::new(Said::default()));
        let stdout = child.stdout.take().context("the peer's stdout")?;
        {
            let (taken, refused, said) = (taken.clone(), refused.clone(), said.clone());
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    let mut words = line.split_whitespace();
                    let first = words.next();
                    let mut n = || words.next().and_then(|w| w.parse::<u64>().ok());
                    if first == Some("progress") {
                        if let (Some(t), Some(r)) = (n(), n()) {
                            taken.store(t, Ordering::Relaxed);
                            refused.store(r, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let Ok(mut said) = said.lock() else { return };
                    match first {
                        Some("state") => said.running = line == "state RUNNING",
                        Some("restore-start") => {
                            said.restores_started += 1;
                            said.first_start.get_or_insert_with(Instant::now);
                        }
                        Some("restore-end") => {
                            let _partition = n();
                            said.restores_ended += 1;
                            said.restored_records += n().unwrap_or(0);
                            said.last_end = Some(Instant::now());
                        }
                        _ => continue,
                    }
                    said.last = Some(Instant::now());
                }
            });
        }
        Ok(Self {
            child,
            started: Instant::now(),
            taken,
            refused,
            said,
            log,
        })
    }

    /// Waits until the peer is `RUNNING` with every restoration it began ended and nothing
    /// said for a second (a restoration may begin just after `RUNNING`); returns the restored
    /// records, the seconds from the first restoration's start to the last one's end, and the
    /// time from start to the last of those lines.
    pub(super) fn wait_restored(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<(u64, f64, Duration)> {
        loop {
            self.check_alive()?;
            {
                let said = self
                    .said
                    .lock()
                    .map_err(|_| anyhow::anyhow!("peer output lock"))?;
                if let Some(last) = said.last {
                    if said.running
                        && said.restores_started == said.restores_ended
                        && last.elapsed() >= Duration::from_secs(1)
                    {
                        let span = match (said.first_start, said.last_end) {
                            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
                            _ => 0.0,
                        };
                        return Ok((
                            said.restored_records,
                            span,
                            last.duration_since(self.started),
                        ));
                    }
                }
            }
            if self.started.elapsed() > timeout {
                bail!("the Kafka Streams peer did not restore within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Commands taken so far.
    pub(super) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Commands refused so far (undecodable or invalid).
    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            bail!(
                "the Kafka Streams peer exited ({status}); its log {}:\n{}",
                self.log.display(),
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        Ok(())
    }

    /// Peak resident set size so far, bytes.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        super::pipeline::vm_hwm(self.child.id())
    }

    /// Stops the peer: TERM (Kafka Streams closes, committing its last transaction), then KILL
    /// after 60 s.
    pub(super) fn stop(&mut self) {
        super::pipeline::stop_child(&mut self.child, Duration::from_secs(60));
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_config_carries_every_channel_policy_of_the_example() {
        let t = Topology::parse_toml_str(crate::EXAMPLE_TOPOLOGY).expect("example parses");
        let text = peer_config(&t);
        for line in [
            "channels=amazon,walmart,shopify,ebay",
            "channel.amazon.share_pct=4000",
            "channel.amazon.buffer=2",
            "channel.walmart.min_publish=2",
            "channel.walmart.soft_hold_ttl_ms=1800000",
            "channel.shopify.oversell=backorder",
            "channel.ebay.max_qty=50",
            "channel.ebay.eligible=dc-east",
            "channel.amazon.hard_hold_max_age_ms=2592000000",
            "shipped_line_retention_ms=604800000",
            "locations=dc-east,store-nyc",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        // No eligible-locations line means every location (present and empty would mean none).
        assert!(!text.contains("channel.amazon.eligible"));
    }
}
