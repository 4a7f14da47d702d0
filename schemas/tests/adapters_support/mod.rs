//! Helpers shared by the `adapters_*` integration tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use shelfsync_schemas::adapters::AdapterKind;
use shelfsync_schemas::RawOrderEnvelope;

/// The project's own fixtures, `tests/fixtures` at the workspace root.
pub fn project_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tests")
        .join("fixtures")
}

/// The marketplaces' published examples: `$SHELFSYNC_SHARED_FIXTURES`, else
/// `<workspace>/../shared/fixtures/marketplaces`. `None` (with a note on stderr) when absent.
pub fn shared_fixtures() -> Option<PathBuf> {
    let dir = match std::env::var_os("SHELFSYNC_SHARED_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("shared")
            .join("fixtures")
            .join("marketplaces"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        // Once per test binary, on the real stderr (the harness captures `eprintln!`).
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            let note = format!(
                "\nnote: skipping marketplace fixture tests: {} not found (set SHELFSYNC_SHARED_FIXTURES)\n",
                dir.display()
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
        });
        None
    }
}

/// The `.json` files of `dir`, sorted by name.
pub fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

pub fn read_bytes(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&read_bytes(path))
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The channel → adapter map the fixtures assume (`tests/fixtures/channels.json`), standing in
/// for the topology.
pub fn channels() -> BTreeMap<String, AdapterKind> {
    let value = read_json(&project_fixtures().join("channels.json"));
    serde_json::from_value(value).expect("channels.json maps channel names to adapter names")
}

/// An envelope around `payload`, as the raw-orders producer would write it.
pub fn envelope(channel: &str, payload: Value) -> RawOrderEnvelope {
    RawOrderEnvelope {
        channel: channel.to_owned(),
        delivery_id: "test-delivery".to_owned(),
        received_at: 1_772_000_000_000,
        payload,
    }
}
