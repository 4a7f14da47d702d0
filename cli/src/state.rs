//! `shelfsync state inspect`: what a stopped instance's state directory holds. Per task (one
//! RocksDB column family each, `inventory-3`, …): its checkpoint (next input offset, step,
//! lineage, upstream marks) and its entries counted by kind; with `--key`, the entries of one SKU
//! or order key in every task, decoded (a SKU record, its line holds, an order as dedupe and
//! assemble keep it). Read only: it takes no lock and writes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::bail;
use serde_json::{json, Value};
use shelfsync_operators::describe;
use shelfsync_pipeline::state_reader::StateReader;

/// `shelfsync state …`.
#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// What a stopped instance's state directory holds, per task; with `--key`, one SKU's or
    /// order's entries decoded.
    Inspect {
        /// The instance's `--state-dir`.
        #[arg(long, env = "SHELFSYNC_STATE_DIR")]
        state_dir: PathBuf,
        /// Only this task (`inventory-3`; `state inspect` without it lists them).
        #[arg(long)]
        task: Option<String>,
        /// A SKU or an order key (`amazon:111-2222222-3333333`): its entries in every task.
        #[arg(long)]
        key: Option<String>,
        /// `table` or `json` (one object per task or entry, a line each).
        #[arg(long, value_enum, default_value_t = crate::dlq::Format::Table)]
        format: crate::dlq::Format,
    },
}

/// One task's summary.
fn summary(reader: &StateReader, task: &str) -> anyhow::Result<Value> {
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    reader.scan(task, b"", |k, _| {
        *kinds.entry(describe::kind(k)).or_default() += 1;
        true
    })?;
    let checkpoint = reader.checkpoint(task)?.map(|c| {
        json!({
            "next_offset": c.next_offset,
            "next_step": c.next_step,
            "lineage": c.lineage,
            "last_input": c.last_input,
            "upstream_marks": c.marks,
        })
    });
    Ok(json!({"task": task, "checkpoint": checkpoint, "entries": kinds}))
}

/// Every entry of `wanted` (a SKU or an order key) in `task`: (key, kind, decoded value).
fn entries_of(
    reader: &StateReader,
    task: &str,
    wanted: &str,
) -> anyhow::Result<Vec<(String, &'static str, String)>> {
    let mut found = Vec::new();
    let mut add = |k: &[u8], v: &[u8]| {
        let text = match describe::value_text(k, v) {
            Ok(t) => t.unwrap_or_default(),
            Err(e) => format!("(does not decode: {e})"),
        };
        found.push((describe::key_text(k), describe::kind(k), text));
    };
    for key in describe::keys_of(wanted) {
        if let Some(v) = reader.get(task, &key)? {
            add(&key, &v);
        }
    }
    // A SKU's holds, then an order's holds (on any SKU).
    reader.scan(task, &describe::hold_prefix(wanted), |k, v| {
        add(k, v);
        true
    })?;
    reader.scan(task, b"l:", |k, v| {
        if describe::hold_of_order(k, wanted) {
            add(k, v);
        }
        true
    })?;
    Ok(found)
}

/// Runs `shelfsync state …`.
///
/// # Errors
/// When the directory cannot be read, or names no such task.
pub fn run(command: StateCommand) -> anyhow::Result<()> {
    let StateCommand::Inspect {
        state_dir,
        task,
        key,
        format,
    } = command;
    let reader = StateReader::open(&state_dir)?;
    let tasks: Vec<String> = match &task {
        Some(t) if !reader.tasks().contains(t) => bail!(
            "no task {t} in {} (it has: {})",
            state_dir.display(),
            reader.tasks().join(", ")
        ),
        Some(t) => vec![t.clone()],
        None => reader.tasks().to_vec(),
    };
    let json = format == crate::dlq::Format::Json;
    let Some(wanted) = key else {
        if !json {
            println!("{}: {} tasks", state_dir.display(), tasks.len());
        }
        for t in &tasks {
            let s = summary(&reader, t)?;
            if json {
                println!("{s}");
                continue;
            }
            let cp = &s["checkpoint"];
            let checkpoint = if cp.is_null() {
                "no checkpoint".to_string()
            } else {
                format!(
                    "next offset {}, next step {}, lineage {}, {} upstream marks",
                    cp["next_offset"],
                    cp["next_step"],
                    cp["lineage"],
                    cp["upstream_marks"].as_object().map_or(0, |m| m.len())
                )
            };
            let kinds: Vec<String> = s["entries"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            println!("{t:<18} {checkpoint}; {}", kinds.join(", "));
        }
        return Ok(());
    };
    let mut any = false;
    for t in &tasks {
        for (k, kind, text) in entries_of(&reader, t, &wanted)? {
            any = true;
            if json {
                println!(
                    "{}",
                    json!({"task": t, "key": k, "kind": kind, "value": text})
                );
            } else {
                println!("{t} {k} ({kind})");
                for line in text.lines() {
                    println!("    {line}");
                }
            }
        }
    }
    if !any && !json {
        println!(
            "no entry of {wanted:?} in {} ({} tasks read)",
            state_dir.display(),
            tasks.len()
        );
    }
    Ok(())
}
