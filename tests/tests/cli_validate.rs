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
