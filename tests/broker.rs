//! A tansu broker process owned by one test.
//!
//! tansu runs under a tiny `sh` wrapper whose watchdog reads the wrapper's stdin, a pipe held by
//! the test process: when the test process goes away for any reason (panic, Ctrl-C, SIGKILL of
//! the test binary, a CI timeout), the pipe closes and the watchdog terminates tansu. `Drop`
//! kills it right away, so no broker outlives its test.

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
/// `SHELFSYNC_BROKER_START_TIMEOUT` (seconds) says otherwise.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start on a fresh port when the broker dies during start-up (e.g. the port picked
/// was taken by another process in between).
const START_ATTEMPTS: usize = 3;
const PID_FILE: &str = "tansu.pid";
const LOG_FILE: &str = "tansu.log";

/// `sh -c` script that runs `"$@"` (tansu) in the background, writes its pid to `tansu.pid`,
/// waits for it and exits with its status. Its watchdog terminates tansu (TERM, then KILL after
/// 5 s) and deletes `$SHELFSYNC_TANSU_DIR` once stdin reaches end of file while the wrapper still
/// runs, i.e. when the test process died without dropping its `Broker`.
const WRAPPER: &str = r#"
exec 3<&0
"$@" </dev/null &
child=$!
echo "$child" > tansu.pid.tmp && mv tansu.pid.tmp tansu.pid
wrapper=$$
(
    while read -r _; do :; done
    if kill -0 "$wrapper" 2>/dev/null; then
        kill -s TERM "$child" 2>/dev/null
        i=0
        while kill -0 "$child" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$child" 2>/dev/null && kill -s KILL "$child" 2>/dev/null
        # The test process is gone, so its TempDir will not clean up: do it here.
        case "$SHELFSYNC_TANSU_DIR" in */shelfsync-broker-*) rm -rf "$SHELFSYNC_TANSU_DIR" ;; esac
    fi
) <&3 >/dev/null 2>&1 &
exec 3<&-
wait "$child"
"#;

/// The storage engine of a [`Broker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `sqlite://`: durable across [`Broker::restart`], correct offsets. Use it for tests.
    Sqlite,
    /// `memory://`: fast, loses everything on restart. For benchmarks.
    Memory,
}

impl Engine {
    fn url(self) -> &'static str {
        match self {
            // tansu resolves the path against its working directory, the broker's temp dir.
            Engine::Sqlite => "sqlite://tansu.db",
            Engine::Memory => "memory://tansu/",
        }
    }
}

/// A tansu broker on `127.0.0.1`, with its data in a fresh temporary directory (under `/dev/shm`
/// when it exists). The process is killed and the directory deleted on drop.
///
/// The methods block (they poll the port); from async code call them before entering the runtime
/// or through `spawn_blocking`.
#[derive(Debug)]
pub struct Broker {
    engine: Engine,
    port: u16,
    bin: PathBuf,
    dir: TempDir,
    process: Option<Running>,
}

#[derive(Debug)]
struct Running {
    wrapper: Child,
    /// Held open for the watchdog; closing it terminates tansu.
    watchdog: Option<ChildStdin>,
    tansu_pid: u32,
}

impl Broker {
    /// Starts a broker with the sqlite engine on a free port and waits until it answers Kafka
    /// requests.
    pub fn start() -> Result<Broker> {
        Broker::start_with(Engine::Sqlite)
    }

    /// Starts a broker with the memory engine (benchmarks; data does not survive a restart).
    pub fn start_memory() -> Result<Broker> {
        Broker::start_with(Engine::Memory)
    }

    /// Starts a broker with the given engine on a free port.
    pub fn start_with(engine: Engine) -> Result<Broker> {
        let bin = tansu_bin()?;
        let mut attempt = 1;
        loop {
            let mut broker = Broker {
                engine,
                port: free_port()?,
                bin: bin.clone(),
                dir: temp_dir()?,
                process: None,
            };
            match broker.launch() {
                Ok(()) => return Ok(broker),
                // Most likely another process took the port in between: try a fresh one.
                Err(Launch::Exited(_)) if attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into_inner()),
            }
        }
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The TCP port the broker listens on (unchanged by [`Broker::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The broker's working directory: sqlite database, pid file and `tansu.log`.
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
        // Signal tansu only while the wrapper has not reaped it, so the pid is still tansu's.
        if matches!(running.wrapper.try_wait(), Ok(None)) {
            let _ = Command::new("sh")
                .args(["-c", "kill -s KILL \"$1\" 2>/dev/null", "sh"])
                .arg(running.tansu_pid.to_string())
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
                        "tansu (pid {}) did not die within 10 s of SIGKILL",
                        running.tansu_pid
                    ));
                }
                Err(e) => break Err(e).context("waiting for the tansu wrapper"),
            }
        };
        // Ends the watchdog; were tansu still alive, the watchdog would terminate it.
        drop(running.watchdog.take());
        result
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port with the same data.
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.launch()
            .map_err(|e| e.into_inner().context("restarting tansu"))
    }

    /// Sends a Kafka `ApiVersions` request and checks the answer: the broker speaks Kafka.
    pub fn ping(&self) -> Result<()> {
        api_versions(self.port, Duration::from_secs(5)).map(|_| ())
    }

    /// Spawns tansu on `self.port` in `self.dir` and waits until it answers.
    fn launch(&mut self) -> Result<(), Launch> {
        if self.process.is_some() {
            return Err(Launch::Failed(anyhow!("tansu is already running")));
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
            .context("opening tansu.log")?;
        writeln!(
            log,
            "=== shelfsync-tests: starting tansu on 127.0.0.1:{} ({:?}) ===",
            self.port, self.engine
        )?;
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let mut wrapper = Command::new("sh")
            .args(["-c", WRAPPER, "sh"])
            .arg(&self.bin)
            .arg("broker")
            .args(["--cluster-id", "shelfsync-tests"])
            .args(["--listener-url", &listener])
            .args(["--advertised-listener-url", &listener])
            .args(["--storage-engine", self.engine.url()])
            .current_dir(dir)
            .env("SHELFSYNC_TANSU_DIR", dir)
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {} through sh", self.bin.display()))?;
        let watchdog = wrapper.stdin.take();
        let mut running = Running {
            wrapper,
            watchdog,
            tansu_pid: 0,
        };

        let timeout = start_timeout();
        let deadline = Instant::now() + timeout;
        let ready = loop {
            if running.tansu_pid == 0 {
                if let Ok(pid) = fs::read_to_string(dir.join(PID_FILE)) {
                    running.tansu_pid = pid.trim().parse().unwrap_or(0);
                }
            }
            if let Ok(Some(status)) = running.wrapper.try_wait() {
                break Err(Launch::Exited(anyhow!(
                    "tansu exited during start-up ({status})"
                )));
            }
            if running.tansu_pid != 0 && api_versions(self.port, Duration::from_secs(1)).is_ok() {
                break match self.engine {
                    Engine::Sqlite => index_headers(dir).map_err(Launch::Failed),
                    Engine::Memory => Ok(()),
                };
            }
            if Instant::now() >= deadline {
                break Err(Launch::Failed(anyhow!(
                    "tansu did not answer on {} within {timeout:?}",
                    self.bootstrap()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        };
        self.process = Some(running);
        ready.map_err(|e| {
            let _ = self.kill();
            let context = format!(
                "starting tansu ({}); log tail:\n{}",
                self.bin.display(),
                tail(&self.log(), 30)
            );
            e.map(|e| e.context(context))
        })
    }
}

/// tansu 0.6.0's sqlite schema has no index on `header (topition, offset_id)`, and its fetch
/// looks the headers of every record up by exactly those columns: each fetched record scans the
/// whole header table, so fetching gets slower with every record written (quadratic). Every
/// record shelfsync writes to an internal topic carries a stamp header, so after a few tens of
/// thousands of records the broker spends its one core on these scans and stops answering
/// heartbeats and fetches for minutes. Adding the index (which tansu's own queries then use) fixes
/// it; `scripts/tansu.sh` does the same for the demo. The statement is idempotent.
pub(crate) const TANSU_HEADER_INDEX_SQL: &str =
    "create index if not exists shelfsync_header_topition_offset on header (topition, offset_id);";

/// Applies [`TANSU_HEADER_INDEX_SQL`] to the broker's sqlite file with the `sqlite3` command,
/// waiting up to 10 s for tansu to have created its schema.
fn index_headers(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("sqlite3")
            .args(["-cmd", ".timeout 5000"])
            .arg(dir.join("tansu.db"))
            .arg(TANSU_HEADER_INDEX_SQL)
            .output()
            .context("running sqlite3 (apt package sqlite3; `bash scripts/deps.sh` installs it)")?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if Instant::now() >= deadline {
            bail!("indexing tansu's header table: {err}");
        }
        thread::sleep(Duration::from_millis(100));
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

/// The tansu binary: `$TANSU_BIN`, else `~/.cache/shelfsync/tansu/bin/tansu` (where
/// `scripts/deps.sh` installs it), else `tansu` on `PATH`.
pub fn tansu_bin() -> Result<PathBuf> {
    const HINT: &str = "run `bash scripts/deps.sh` to install the pinned tansu";
    if let Some(bin) = env::var_os("TANSU_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        ensure!(
            bin.is_file(),
            "TANSU_BIN={} is not a file: {HINT}",
            bin.display()
        );
        return Ok(bin);
    }
    let cached = env::var_os("HOME")
        .map(|home| PathBuf::from(home).join(".cache/shelfsync/tansu/bin/tansu"))
        .filter(|p| p.is_file());
    let on_path = || {
        env::split_paths(&env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    };
    cached.or_else(on_path).ok_or_else(|| {
        anyhow!(
            "no tansu broker binary (not in $TANSU_BIN, ~/.cache/shelfsync/tansu/bin/tansu or PATH): {HINT}"
        )
    })
}

fn temp_dir() -> Result<TempDir> {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("shelfsync-broker-");
    // SHELFSYNC_KEEP_TEST_DIRS=1 keeps the broker's directory (its sqlite file and tansu.log)
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

/// Sends `ApiVersions` v0 to `127.0.0.1:port`; returns how many APIs the broker supports.
fn api_versions(port: u16, timeout: Duration) -> Result<usize> {
    const API_VERSIONS: i16 = 18;
    const CORRELATION_ID: i32 = 0x5e1f_5c01;
    const CLIENT_ID: &[u8] = b"shelfsync-tests";

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;

    // Request header v1 (api key, version, correlation id, client id); the v0 body is empty.
    let mut request = Vec::with_capacity(32);
    request.extend_from_slice(&API_VERSIONS.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    request.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    request.extend_from_slice(CLIENT_ID);
    let mut frame = (request.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&request);
    stream.write_all(&frame)?;

    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    ensure!(
        (10..1 << 20).contains(&size),
        "ApiVersions response of {size} bytes"
    );
    let mut response = vec![0u8; size as usize];
    stream.read_exact(&mut response)?;
    let be_i16 = |at: usize| i16::from_be_bytes([response[at], response[at + 1]]);
    let be_i32 = |at: usize| {
        i32::from_be_bytes([
            response[at],
            response[at + 1],
            response[at + 2],
            response[at + 3],
        ])
    };
    // Response header v0 (correlation id), then error code and the array of supported APIs.
    ensure!(
        be_i32(0) == CORRELATION_ID,
        "ApiVersions: wrong correlation id"
    );
    let error_code = be_i16(4);
    if error_code != 0 {
        bail!("ApiVersions: error code {error_code}");
    }
    let apis = be_i32(6);
    ensure!(apis > 0, "ApiVersions: the broker lists no APIs");
    Ok(apis as usize)
}
