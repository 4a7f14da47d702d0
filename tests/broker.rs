//! An Apache Kafka broker process owned by one test.
//!
//! The broker is started exactly as `scripts/kafka.sh` starts one (it runs `scripts/kafka.sh run`:
//! the same configuration, storage format and JVM flags), a single-node KRaft broker with its own
//! controller, on free `127.0.0.1` ports. It runs under a tiny `sh` wrapper whose watchdog reads
//! the wrapper's stdin, a pipe held by the test process: when the test process goes away for any
//! reason (panic, Ctrl-C, SIGKILL of the test binary, a CI timeout), the pipe closes and the
//! watchdog terminates the broker. `Drop` kills it right away, so no broker outlives its test.

use std::env;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use tempfile::TempDir;

/// How long [`Broker::start`] waits for the broker to answer, unless
/// `SHELFSYNC_BROKER_START_TIMEOUT` (seconds) says otherwise. A JVM broker on two busy cores
/// takes 5–20 s.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);
/// Attempts to start on fresh ports when the broker dies during start-up (e.g. a port picked
/// was taken by another process in between).
const START_ATTEMPTS: usize = 3;
const PID_FILE: &str = "broker.pid";
const LOG_FILE: &str = "kafka.log";

/// `sh -c` script that runs `"$@"` (`bash scripts/kafka.sh run …`, which execs the JVM) in the
/// background, writes its pid to `broker.pid`, waits for it and exits with its status. Its
/// watchdog terminates the broker (TERM, then KILL after 5 s) and deletes
/// `$SHELFSYNC_BROKER_TEST_DIR` once stdin reaches end of file while the broker still runs, i.e.
/// when the test process died without dropping its `Broker` (a `Broker` kills the broker before
/// it closes the pipe).
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null &
child=$!
echo "$child" > broker.pid.tmp && mv broker.pid.tmp broker.pid
(
    while read -r _; do :; done
    if kill -0 "$child" 2>/dev/null; then
        kill -s TERM "$child" 2>/dev/null
        i=0
        while kill -0 "$child" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$child" 2>/dev/null && kill -s KILL "$child" 2>/dev/null
        # The test process is gone, so its TempDir will not clean up: do it here.
        case "$SHELFSYNC_BROKER_TEST_DIR" in */shelfsync-broker-*) rm -rf "$SHELFSYNC_BROKER_TEST_DIR" ;; esac
    fi
) <&3 >/dev/null 2>&1 &
exec 3<&-
wait "$child"
"#;

/// A client listener with TLS and SASL/SCRAM-SHA-512 next to the plaintext one.
#[derive(Clone, Debug)]
pub struct SaslSsl {
    /// PEM file with the broker's private key (unencrypted PKCS#8) and certificate chain.
    pub keystore: PathBuf,
    /// The SCRAM-SHA-512 user created when the storage is formatted.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// An Apache Kafka broker (KRaft, broker + controller in one JVM) on `127.0.0.1`, with its data
/// in a fresh temporary directory. The process is killed and the directory deleted on drop.
///
/// The methods block (they poll the port); from async code call them before entering the runtime
/// or through `spawn_blocking`.
#[derive(Debug)]
pub struct Broker {
    port: u16,
    sasl_ssl: Option<(u16, SaslSsl)>,
    script: PathBuf,
    dir: TempDir,
    process: Option<Running>,
}

#[derive(Debug)]
struct Running {
    wrapper: Child,
    /// Held open for the watchdog; closing it terminates the broker.
    watchdog: Option<ChildStdin>,
    broker_pid: u32,
}

impl Broker {
    /// Starts a broker on a free port and waits until it answers a Metadata request.
    pub fn start() -> Result<Broker> {
        Broker::start_with(None)
    }

    /// Starts a broker with a SASL_SSL listener (see [`Broker::sasl_ssl_bootstrap`]) as well.
    pub fn start_sasl_ssl(sasl_ssl: SaslSsl) -> Result<Broker> {
        Broker::start_with(Some(sasl_ssl))
    }

    fn start_with(sasl_ssl: Option<SaslSsl>) -> Result<Broker> {
        let script = kafka_script()?;
        let mut attempt = 1;
        loop {
            let sasl = match &sasl_ssl {
                Some(s) => Some((free_port()?, s.clone())),
                None => None,
            };
            let mut broker = Broker {
                port: free_port()?,
                sasl_ssl: sasl,
                script: script.clone(),
                dir: temp_dir()?,
                process: None,
            };
            match broker.launch() {
                Ok(()) => return Ok(broker),
                // Most likely another process took a port in between: try fresh ones.
                Err(Launch::Exited(_)) if attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into_inner()),
            }
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers` (PLAINTEXT).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` of the SASL_SSL listener, when the broker has one.
    pub fn sasl_ssl_bootstrap(&self) -> Option<String> {
        self.sasl_ssl
            .as_ref()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
    }

    /// The TCP port the broker listens on (unchanged by [`Broker::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's directory: configuration, `data/` (the log dirs), pid file and `kafka.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's log so far (all starts), for diagnostics in assertion messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// Whether the broker process is alive.
    pub fn is_running(&mut self) -> bool {
        match &mut self.process {
            Some(running) => matches!(running.wrapper.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the broker with SIGKILL, like a crash, and waits until it is gone. The data stays, so
    /// [`Broker::restart`] can bring it back. Does nothing when the broker is not running.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut running) = self.process.take() else {
            return Ok(());
        };
        // Signal the JVM only while the wrapper has not reaped it, so the pid is still the broker's.
        if matches!(running.wrapper.try_wait(), Ok(None)) && running.broker_pid != 0 {
            let _ = Command::new("sh")
                .args(["-c", "kill -s KILL \"$1\" 2>/dev/null", "sh"])
                .arg(running.broker_pid.to_string())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let result = loop {
            match running.wrapper.try_wait() {
                Ok(Some(_)) => break Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) => {
                    let _ = running.wrapper.kill();
                    let _ = running.wrapper.wait();
                    break Err(anyhow!(
                        "the broker (pid {}) did not die within 10 s of SIGKILL",
                        running.broker_pid
                    ));
                }
                Err(e) => break Err(e).context("waiting for the broker's wrapper"),
            }
        };
        // Ends the watchdog; were the broker still alive, the watchdog would terminate it.
        drop(running.watchdog.take());
        result
    }

    /// Kills the broker (SIGKILL) and starts it again on the same ports with the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.launch()
            .map_err(|e| e.into_inner().context("restarting the broker"))
    }

    /// Sends a Kafka `Metadata` request and checks the answer lists this broker.
    pub fn ping(&self) -> Result<()> {
        metadata_brokers(self.port, Duration::from_secs(5)).map(|_| ())
    }

    /// Spawns the broker on `self.port` in `self.dir` and waits until it answers.
    fn launch(&mut self) -> Result<(), Launch> {
        if self.process.is_some() {
            return Err(Launch::Failed(anyhow!("the broker is already running")));
        }
        self.spawn_and_wait()
    }

    fn spawn_and_wait(&mut self) -> Result<(), Launch> {
        let dir = self.dir.path();
        let _ = fs::remove_file(dir.join(PID_FILE));
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(dir.join(LOG_FILE))
            .context("opening kafka.log")?;
        writeln!(
            log,
            "=== shelfsync-tests: starting Apache Kafka on 127.0.0.1:{} ===",
            self.port
        )?;
        let mut command = Command::new("sh");
        command
            .args(["-c", WRAPPER, "sh", "bash"])
            .arg(&self.script)
            .arg("run")
            .arg("--dir")
            .arg(dir)
            .args(["--port", &self.port.to_string()]);
        if let Some((port, sasl)) = &self.sasl_ssl {
            command
                .args(["--sasl-ssl-port", &port.to_string()])
                .arg("--tls-keystore")
                .arg(&sasl.keystore)
                .arg("--scram")
                .arg(format!("{}:{}", sasl.username, sasl.password));
        }
        let mut wrapper = command
            .current_dir(dir)
            .env("SHELFSYNC_BROKER_TEST_DIR", dir)
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning bash {} run", self.script.display()))?;
        let watchdog = wrapper.stdin.take();
        let mut running = Running {
            wrapper,
            watchdog,
            broker_pid: 0,
        };

        let timeout = start_timeout();
        let deadline = Instant::now() + timeout;
        let ready = loop {
            if running.broker_pid == 0 {
                if let Ok(pid) = fs::read_to_string(dir.join(PID_FILE)) {
                    running.broker_pid = pid.trim().parse().unwrap_or(0);
                }
            }
            if let Ok(Some(status)) = running.wrapper.try_wait() {
                break Err(Launch::Exited(anyhow!(
                    "the broker exited during start-up ({status})"
                )));
            }
            if running.broker_pid != 0
                && metadata_brokers(self.port, Duration::from_secs(2)).is_ok_and(|n| n > 0)
            {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(Launch::Failed(anyhow!(
                    "the broker did not answer a Metadata request on {} within {timeout:?}",
                    self.bootstrap()
                )));
            }
            thread::sleep(Duration::from_millis(100));
        };
        self.process = Some(running);
        ready.map_err(|e| {
            let _ = self.kill();
            let context = format!(
                "starting Apache Kafka ({} run); log tail:\n{}",
                self.script.display(),
                tail(&self.log(), 30)
            );
            e.map(|e| e.context(context))
        })
    }
}

/// Why a start failed: `Exited` (the broker died by itself, e.g. its port was taken) is worth
/// retrying on another port; `Failed` is not.
#[derive(Debug)]
enum Launch {
    Exited(anyhow::Error),
    Failed(anyhow::Error),
}

impl Launch {
    fn map(self, f: impl FnOnce(anyhow::Error) -> anyhow::Error) -> Launch {
        match self {
            Launch::Exited(e) => Launch::Exited(f(e)),
            Launch::Failed(e) => Launch::Failed(f(e)),
        }
    }

    fn into_inner(self) -> anyhow::Error {
        match self {
            Launch::Exited(e) | Launch::Failed(e) => e,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Launch {
    fn from(e: E) -> Launch {
        Launch::Failed(e.into())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// `scripts/kafka.sh` of this checkout, which runs the broker from the jars `scripts/deps.sh`
/// fetched (`$KAFKA_LIBS`, default `~/.cache/shelfsync/kafka-<version>/libs`).
pub fn kafka_script() -> Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    ensure!(
        script.is_file(),
        "{} is missing: the tests run from a shelfsync checkout",
        script.display()
    );
    Ok(script)
}

fn temp_dir() -> Result<TempDir> {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("shelfsync-broker-");
    // SHELFSYNC_KEEP_TEST_DIRS=1 keeps the broker's directory (its data and kafka.log)
    // for a post-mortem of a failed test.
    builder.disable_cleanup(keep_test_dirs());
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return Ok(dir);
        }
    }
    builder.tempdir().context("creating the broker's temp dir")
}

/// Whether `SHELFSYNC_KEEP_TEST_DIRS` asks to keep test directories after the test.
pub(crate) fn keep_test_dirs() -> bool {
    env::var_os("SHELFSYNC_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1:0 for a port")?;
    Ok(listener.local_addr()?.port())
}

fn start_timeout() -> Duration {
    env::var("SHELFSYNC_BROKER_START_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_START_TIMEOUT)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sends `Metadata` v4 for no topics to `127.0.0.1:port`; returns how many brokers the answer
/// lists. A KRaft broker answers with itself only once it has caught up with its controller.
fn metadata_brokers(port: u16, timeout: Duration) -> Result<usize> {
    const METADATA: i16 = 3;
    const CORRELATION_ID: i32 = 0x5e1f_5c01;
    const CLIENT_ID: &[u8] = b"shelfsync-tests";

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    // Request header v1 (api key, version, correlation id, client id), then the v4 body: an
    // empty topic array (no topics, brokers only) and allow_auto_topic_creation = false.
    let mut request = Vec::with_capacity(40);
    request.extend_from_slice(&METADATA.to_be_bytes());
    request.extend_from_slice(&4i16.to_be_bytes());
    request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    request.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    request.extend_from_slice(CLIENT_ID);
    request.extend_from_slice(&0i32.to_be_bytes());
    request.push(0);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame)?;

    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    ensure!(
        (12..1 << 20).contains(&size),
        "Metadata response of {size} bytes"
    );
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response)?;
    let be_i32 = |at: usize| {
        i32::from_be_bytes([
            response[at],
            response[at + 1],
            response[at + 2],
            response[at + 3],
        ])
    };
    // Response header v0 (correlation id), throttle time, then the array of brokers.
    ensure!(
        be_i32(0) == CORRELATION_ID,
        "Metadata: wrong correlation id"
    );
    let brokers = be_i32(8);
    if brokers < 0 {
        bail!("Metadata: broker array of length {brokers}");
    }
    Ok(brokers as usize)
}
