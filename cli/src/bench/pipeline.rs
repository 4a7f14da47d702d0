//! The pipeline under test: `shelfsync run` as a child process (so its peak RSS is its own),
//! its `/metrics` and `/readyz` read over HTTP with `reqwest`, its log and `VmHWM`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use shelfsync_topology::Topology;

/// `shelfsync run` in a child process; stopped (TERM, then KILL) when dropped.
pub(super) struct Pipeline {
    child: Child,
    http: HttpClient,
    /// The child's log (JSON lines on stderr).
    pub(super) log: PathBuf,
}

impl Pipeline {
    pub(super) fn spawn(topology: &Topology, dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, topology.to_toml_string()?)?;
        let http = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?
        };
        let client = HttpClient::new(http)?;
        let log = dir.join(format!("{name}.log"));
        let exe = std::env::current_exe().context("locate the shelfsync binary")?;
        let child = Command::new(exe)
            .args(["--log-format", "json", "run", "--topology"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")))
            .arg("--http-addr")
            .arg(http.to_string())
            .env_remove("SHELFSYNC_APPLICATION_ID")
            .env_remove("SHELFSYNC_BOOTSTRAP_SERVERS")
            .env_remove("SHELFSYNC_TOPOLOGY")
            .env_remove("SHELFSYNC_STATE_DIR")
            .env_remove("SHELFSYNC_HTTP_ADDR")
            .env("SHELFSYNC_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start `shelfsync run`")?;
        Ok(Self {
            child,
            http: client,
            log,
        })
    }

    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the pipeline exited ({status}); its log {}:\n{}",
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// Peak resident set size so far, bytes.
    pub(super) fn peak_rss(&self) -> Option<u64> {
        vm_hwm(self.child.id())
    }

    fn metrics(&self) -> anyhow::Result<String> {
        let (code, body) = self.http.get("/metrics")?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(body)
    }

    fn ready(&self) -> bool {
        matches!(self.http.get("/readyz"), Ok((200, _)))
    }

    pub(super) fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        while !self.ready() {
            self.check_alive()?;
            if began.elapsed() > timeout {
                bail!("the pipeline was not ready within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(began.elapsed())
    }

    /// Records in per stage, from `/metrics`.
    pub(super) fn records_in(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text = self.metrics()?;
        Ok(by_label(
            &text,
            shelfsync_pipeline::metrics::RECORDS_IN,
            "stage",
        ))
    }

    pub(super) fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(30));
    }
}

/// Stops `child`: TERM, then KILL once `grace` has passed.
pub(super) fn stop_child(child: &mut std::process::Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let began = Instant::now();
    while began.elapsed() < grace {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `VmHWM` of process `pid`, bytes.
pub(super) fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A client of the pipeline's own HTTP endpoints on loopback: `reqwest` on a current-thread
/// tokio runtime of its own (the bench is threads, not tasks).
struct HttpClient {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl HttpClient {
    fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            // Loopback: never through an `HTTP_PROXY` of the environment.
            .no_proxy()
            // A connection per request: this runtime only runs inside `get`, so a pooled
            // connection the pipeline closed while the bench was busy elsewhere (its header
            // timeout closes idle keep-alive connections after 5 s) was reused unnoticed and
            // failed the phase with "connection closed before message completed".
            .pool_max_idle_per_host(0)
            .build()
            .context("build the HTTP client")?;
        Ok(Self {
            rt,
            client,
            base: format!("http://{addr}"),
        })
    }

    /// GET `path`: the status code and the body.
    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.rt.block_on(async {
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await?;
            let code = response.status().as_u16();
            Ok((code, response.text().await?))
        })
    }
}

/// Sums of counter `name` per value of `label`, from Prometheus text.
fn by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Some(v) = labels
            .split_once(&key)
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_string())
        else {
            continue;
        };
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *out.entry(v).or_insert(0) += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_label_sums_a_counter_per_label() {
        let text = "# TYPE shelfsync_records_in_total counter\n\
            shelfsync_records_in_total{stage=\"dedupe\"} 10\n\
            shelfsync_records_in_total{stage=\"inventory\"} 7\n\
            shelfsync_records_in_total_other{stage=\"inventory\"} 99\n\
            shelfsync_records_out_total{stage=\"dedupe\",topic=\"x\"} 3\n";
        let m = by_label(text, "shelfsync_records_in_total", "stage");
        assert_eq!(m.get("dedupe"), Some(&10));
        assert_eq!(m.get("inventory"), Some(&7));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_http_client_reads_status_and_body() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = [0u8; 1024];
            let n = conn.read(&mut request).expect("read");
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let body = "shelfsync_up 1\n";
            write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            request
        });
        let client = HttpClient::new(addr).expect("client");
        let (code, body) = client.get("/metrics").expect("get");
        assert_eq!((code, body.as_str()), (503, "shelfsync_up 1\n"));
        let request = server.join().expect("server");
        assert!(
            request.starts_with("GET /metrics HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn vm_hwm_reads_kib() {
        assert_eq!(
            status_kib("Name:\tx\nVmHWM:\t  123456 kB\n", "VmHWM:"),
            Some(123_456)
        );
        assert!(vm_hwm(std::process::id()).is_some_and(|b| b > 0));
    }
}
