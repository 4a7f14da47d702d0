//! The pipeline end to end through a SASL_SSL listener of Apache Kafka: TLS with a CA and a
//! broker certificate this test makes with `openssl`, SCRAM-SHA-512 with a user created when the
//! broker's storage is formatted, and the client settings exactly as `deploy/` and
//! `topology/retail.example.toml` write them: the example file with its SASL lines uncommented
//! creates its topics, and the pipeline runs with the StatefulSet's `SHELFSYNC_KAFKA_*`
//! variables (the CA of a private PKI from `SHELFSYNC_KAFKA_SSL_CA_LOCATION`). A wrong password
//! stops `topics create` and `run` at start-up with a message that names the refusal.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use shelfsync_schemas::{ChannelAvailability, OrderStatus};
use shelfsync_tests::harness::{decode_all, final_quantities, final_statuses};
use shelfsync_tests::kafka_io::{read_topic, PipelineProcess, TestProducer};
use shelfsync_tests::scenario::{topology_toml, Model, Scenario};
use shelfsync_tests::{Broker, SaslSsl};
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const USER: &str = "shelfsync";
const PASSWORD: &str = "scram-Secret-42";

/// Runs `openssl args…` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (apt package openssl; `bash scripts/deps.sh` installs it)")?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A throw-away CA and a broker certificate for `127.0.0.1` signed by it. Returns the CA
/// certificate (for the clients) and the broker's PEM keystore (PKCS#8 key + certificate).
fn make_certs(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=shelfsync test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    )?;
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
        ],
    )?;
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "broker.pem",
        ],
    )?;
    let key = std::fs::read_to_string(dir.join("broker.key"))?;
    ensure!(
        key.contains("BEGIN PRIVATE KEY"),
        "the broker key is not unencrypted PKCS#8:\n{key}"
    );
    let keystore = dir.join("broker-keystore.pem");
    std::fs::write(
        &keystore,
        key + &std::fs::read_to_string(dir.join("broker.pem"))?,
    )?;
    Ok((dir.join("ca.pem"), keystore))
}

/// `topology/retail.example.toml` with its SASL lines uncommented, as its comments tell a user.
fn example_topology_with_sasl() -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology/retail.example.toml");
    let mut text = std::fs::read_to_string(&path)?;
    for line in [
        r#""security.protocol" = "SASL_SSL""#,
        r#""sasl.mechanisms" = "SCRAM-SHA-512""#,
        r#""sasl.username" = "shelfsync""#,
    ] {
        let commented = format!("# {line}\n");
        ensure!(
            text.contains(&commented),
            "{} no longer has the line `{commented}`",
            path.display()
        );
        text = text.replace(&commented, &format!("{line}\n"));
    }
    Ok(text)
}

/// The variables of `deploy/kubernetes/statefulset.yaml`'s SASL block, uncommented.
fn deploy_env<'a>(password: &'a str, ca: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SHELFSYNC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("SHELFSYNC_KAFKA_SASL_MECHANISMS", "SCRAM-SHA-512"),
        ("SHELFSYNC_KAFKA_SASL_USERNAME", USER),
        ("SHELFSYNC_KAFKA_SASL_PASSWORD", password),
        ("SHELFSYNC_KAFKA_SSL_CA_LOCATION", ca),
    ]
}

/// `shelfsync args…` with `env`; (success, output).
fn cli(args: &[&str], env: &[(&str, &str)]) -> Result<(bool, String)> {
    let out = Command::new(BIN)
        .args(args)
        .env("SHELFSYNC_HTTP_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

/// Checks that `args` fail quickly, naming the refusal.
fn refused(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let started = Instant::now();
    let (ok, text) = cli(args, env)?;
    ensure!(
        !ok,
        "`{}` succeeded with a wrong password:\n{text}",
        args[0]
    );
    ensure!(
        text.contains("refused the connection") && text.contains("sasl.password"),
        "`{}` failed without naming the refusal:\n{text}",
        args[0]
    );
    ensure!(
        started.elapsed() < Duration::from_secs(60),
        "`{}` took {:?} to fail",
        args[0],
        started.elapsed()
    );
    eprintln!(
        "wrong password: `{}` failed in {:?}: {}",
        args[0],
        started.elapsed(),
        text.lines()
            .find(|l| l.contains("refused"))
            .unwrap_or_default()
    );
    Ok(())
}

#[test]
fn pipeline_runs_end_to_end_over_sasl_ssl_and_a_wrong_password_fails_at_start() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("shelfsync-sasl-")
        .tempdir()?;
    let (ca, keystore) = make_certs(dir.path())?;
    let ca = ca.to_str().context("path")?.to_string();
    let broker = Broker::start_sasl_ssl(SaslSsl {
        keystore,
        username: USER.into(),
        password: PASSWORD.into(),
    })?;
    let secure = broker
        .sasl_ssl_bootstrap()
        .context("the broker has no SASL_SSL listener")?;

    // The example topology as its comments say to enable SASL: wrong password refused, the
    // right one creates its topics.
    let example = dir.path().join("retail.toml");
    std::fs::write(&example, example_topology_with_sasl()?)?;
    let example_arg = example.to_str().context("path")?;
    let example_env = [
        ("SHELFSYNC_BOOTSTRAP_SERVERS", secure.as_str()),
        ("SHELFSYNC_APPLICATION_ID", "example"),
        ("SHELFSYNC_KAFKA_SSL_CA_LOCATION", ca.as_str()),
    ];
    let create = ["topics", "create", "--topology", example_arg];
    refused(
        &create,
        &[
            &example_env[..],
            &[("SHELFSYNC_KAFKA_SASL_PASSWORD", "not-the-password")],
        ]
        .concat(),
    )?;
    let (ok, text) = cli(
        &create,
        &[
            &example_env[..],
            &[("SHELFSYNC_KAFKA_SASL_PASSWORD", PASSWORD)],
        ]
        .concat(),
    )?;
    ensure!(
        ok,
        "topics create of the example topology over SASL_SSL failed:\n{text}"
    );

    // The test topology (6 partitions like the example's external topics), security from the
    // StatefulSet's variables only.
    let topology_path = dir.path().join("topology.toml");
    std::fs::write(&topology_path, topology_toml(&secure, "sasl", 6))?;
    let topology_arg = topology_path.to_str().context("path")?;
    let state_wrong = dir.path().join("state-wrong");
    refused(
        &[
            "run",
            "--topology",
            topology_arg,
            "--state-dir",
            state_wrong.to_str().context("path")?,
        ],
        &deploy_env("not-the-password", &ca),
    )?;
    let right = deploy_env(PASSWORD, &ca);
    let (ok, text) = cli(&["topics", "create", "--topology", topology_arg], &right)?;
    ensure!(ok, "topics create over SASL_SSL failed:\n{text}");
    let topology = Topology::load(&topology_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = PipelineProcess::start_with_env(
        Path::new(BIN),
        &topology_path,
        &dir.path().join("state"),
        &dir.path().join("run.log"),
        &right,
    )?;
    let scenario = Scenario::retail()?;
    let mut model = Model::new(&topology);
    // Input goes in on the plaintext listener (the ERP and the channels are other clients);
    // everything the pipeline reads and writes goes through SASL_SSL. One phase at a time, as
    // in e2e_pipeline.rs; over six partitions the final numbers and statuses are the model's.
    let producer = TestProducer::new(&broker.bootstrap())?;
    let plain = broker.bootstrap();
    let (mut avail, mut status): (Vec<ChannelAvailability>, Vec<OrderStatus>) =
        (Vec::new(), Vec::new());
    for phase in &scenario.phases {
        for r in phase {
            model.feed(r)?;
            producer.send(
                &topology.topic_name(r.input.topic()),
                r.key.as_deref(),
                &r.value,
                r.timestamp,
            )?;
        }
        producer.flush()?;
        // Done with the phase when the final numbers and statuses are the model's.
        let want = (
            final_quantities(&model.expected.availability),
            final_statuses(&model.expected.statuses),
        );
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            avail = decode_all(&read_topic(
                &plain,
                &topology.topic_name(TopicId::Availability),
            )?)?;
            status = decode_all(&read_topic(
                &plain,
                &topology.topic_name(TopicId::OrderStatus),
            )?)?;
            if (final_quantities(&avail), final_statuses(&status)) == want {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the outputs never reached the model's numbers:\n{}",
                p.log_tail()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let expected = model.expected;
    let log = std::fs::read_to_string(dir.path().join("run.log"))?;
    p.stop()?;
    assert_eq!(
        final_quantities(&avail),
        final_quantities(&expected.availability)
    );
    assert_eq!(final_statuses(&status), final_statuses(&expected.statuses));
    if log.contains("refused the connection") {
        bail!("the right password was refused:\n{log}");
    }
    eprintln!(
        "over SASL_SSL: {} availability events, {} statuses, equal to the model",
        avail.len(),
        status.len()
    );
    Ok(())
}
