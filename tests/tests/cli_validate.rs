//! `shelfsync validate` prints every problem of a broken topology file with its field path and
//! exits non-zero; a good file passes.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");

#[test]
fn validate_names_every_bad_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"application_id = "bad app!"
[kafka]
bootstrap_servers = "localhost:9092"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "amazon"
adapter = "amazon"
share_pct = 140
buffer = -1
eligible_locations = ["nowhere"]
"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for path in [
        "application_id",
        "channels[0].share_pct",
        "channels[0].buffer",
        "channels[0].eligible_locations[0]",
    ] {
        assert!(
            text.contains(&format!("{path}:")),
            "no problem reported at {path}:\n{text}"
        );
    }
}

#[test]
fn validate_reports_an_unknown_field_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "application_id = \"a\"\nepoch_intervall = \"1s\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text.contains("epoch_intervall") && text.contains("line"),
        "{text}"
    );
}

#[test]
fn the_example_topology_validates() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../topology/retail.example.toml"
    );
    let out = Command::new(BIN)
        .arg("validate")
        .arg(example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_refuses_a_schema_registry_it_cannot_use_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../topology/retail.example.toml"
    ))
    .unwrap();
    let with_registry = example.replacen(
        "[kafka]\n",
        "[kafka]\nschema_registry_url = \"http://127.0.0.1:8081\"\n",
        1,
    );
    assert_ne!(with_registry, example, "the example has no [kafka] table");
    std::fs::write(&path, with_registry).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--topology"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("SHELFSYNC_HTTP_ADDR", "127.0.0.1:0")
        .env("SHELFSYNC_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("schema_registry_url"), "{text}");
}
