//! The local state directory `shelfsync reset --state-dir` wipes, and the checks that keep it
//! from wiping anything else.
//!
//! `shelfsync run` keeps one RocksDB database in its `--state-dir`, directly: RocksDB's own
//! files (`CURRENT`, `IDENTITY`, `LOCK`, `LOG*`, `MANIFEST-*`, `OPTIONS-*`, numbered `.sst`,
//! `.log` and `.blob` files) and nothing else, with one column family per task, named
//! `<stage>-<partition>` (`normalize-0`, `inventory-3`, …), which the newest `OPTIONS-*` file
//! lists. A directory with any other entry, or without a task's column family, is refused; an
//! absent or empty one has nothing to wipe.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use shelfsync_topology::Stage;

/// A shelfsync state directory, checked.
#[derive(Debug)]
pub(crate) struct StateDir {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// The task column families its newest `OPTIONS` file lists (empty: nothing to wipe).
    pub(crate) tasks: Vec<String>,
    /// RocksDB files in it.
    pub(crate) files: usize,
    /// Their size in bytes.
    pub(crate) bytes: u64,
}

/// Whether `name` is a file RocksDB keeps in a database directory.
fn is_rocksdb_file(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if matches!(name, "CURRENT" | "IDENTITY" | "LOCK" | "LOG") {
        return true;
    }
    if let Some(n) = name.strip_prefix("LOG.old.") {
        return digits(n);
    }
    for prefix in ["MANIFEST-", "OPTIONS-"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            return digits(rest.strip_suffix(".dbtmp").unwrap_or(rest));
        }
    }
    name.split_once('.')
        .is_some_and(|(n, ext)| digits(n) && matches!(ext, "sst" | "log" | "blob" | "dbtmp"))
}

/// Whether a column family name is a task's: `<stage>-<partition>`.
fn is_task(name: &str) -> bool {
    Stage::ALL.iter().any(|s| {
        name.strip_prefix(s.name())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The column families an `OPTIONS` file lists (`[CFOptions "name"]` sections).
fn column_families(options: &str) -> Vec<String> {
    options
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[CFOptions \""))
        .filter_map(|l| l.strip_suffix("\"]"))
        .map(str::to_string)
        .collect()
}

/// Checks that `path` is a shelfsync state directory (or absent, or empty).
///
/// # Errors
/// When it is something else: a file, a directory with entries RocksDB does not make, a
/// RocksDB database without a shelfsync task, or unreadable.
pub(crate) fn inspect(path: &Path) -> anyhow::Result<StateDir> {
    let mut dir = StateDir {
        path: path.to_path_buf(),
        tasks: Vec::new(),
        files: 0,
        bytes: 0,
    };
    let refuse = |why: String| -> anyhow::Result<StateDir> {
        bail!(
            "--state-dir {}: {why}; not a shelfsync state directory, nothing was changed (wipe it by hand if it is one)",
            path.display()
        )
    };
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return refuse("it is not a directory".into())
        }
        Err(e) => return Err(e).with_context(|| format!("read --state-dir {}", path.display())),
    };
    let mut options: Option<(u64, PathBuf)> = None;
    let mut current = false;
    for entry in entries {
        let entry = entry.with_context(|| format!("read --state-dir {}", path.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata()?;
        if !meta.is_file() || !is_rocksdb_file(&name) {
            return refuse(format!("it holds {name:?}, which RocksDB does not make"));
        }
        dir.files += 1;
        dir.bytes += meta.len();
        current |= name == "CURRENT";
        if let Some(n) = name.strip_prefix("OPTIONS-").and_then(|n| n.parse().ok()) {
            if options.as_ref().is_none_or(|(m, _)| n > *m) {
                options = Some((n, entry.path()));
            }
        }
    }
    if dir.files == 0 {
        return Ok(dir);
    }
    let (true, Some((_, options))) = (current, options) else {
        return refuse("it has no RocksDB CURRENT and OPTIONS files".into());
    };
    let text =
        std::fs::read_to_string(&options).with_context(|| format!("read {}", options.display()))?;
    dir.tasks = column_families(&text)
        .into_iter()
        .filter(|cf| is_task(cf))
        .collect();
    dir.tasks.sort();
    if dir.tasks.is_empty() {
        return refuse(
            "its RocksDB has no column family of a shelfsync task (normalize-0, …)".into(),
        );
    }
    Ok(dir)
}

impl StateDir {
    /// What it holds, in words.
    pub(crate) fn describe(&self) -> String {
        if self.files == 0 {
            return "absent or empty: nothing to wipe".into();
        }
        const SHOWN: usize = 8;
        let mut tasks = self.tasks[..self.tasks.len().min(SHOWN)].join(", ");
        if self.tasks.len() > SHOWN {
            tasks.push_str(&format!(", … ({} tasks)", self.tasks.len()));
        }
        format!(
            "a shelfsync state directory, {} files, {} bytes, tasks {tasks}",
            self.files, self.bytes
        )
    }

    /// Opens its RocksDB database, which fails while a process (a `shelfsync run` on this host)
    /// holds it, and holds it until the returned value drops, so that no `shelfsync run` starts
    /// on it during the reset. `None` when it is absent or empty.
    ///
    /// # Errors
    /// When RocksDB does not open it (held by another process, unreadable).
    pub(crate) fn lock(&self) -> anyhow::Result<Option<shelfsync_pipeline::rocks_store::StateDb>> {
        if self.files == 0 {
            return Ok(None);
        }
        shelfsync_pipeline::rocks_store::StateDb::open(&self.path, 16 << 20)
            .map(Some)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--state-dir {}: {e}; is a `shelfsync run` still using it? Nothing was changed",
                    self.path.display()
                )
            })
    }

    /// Removes every file of the database, keeping the directory itself (it may be a volume's
    /// mount point). Returns how many files it removed.
    ///
    /// # Errors
    /// When an entry is not a RocksDB file (something appeared since the check) or cannot be
    /// removed.
    pub(crate) fn wipe(&self) -> anyhow::Result<usize> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("read {}", self.path.display())),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.metadata()?.is_file() || !is_rocksdb_file(&name) {
                bail!(
                    "{}: {name:?} appeared in it since it was checked; stopped wiping ({removed} files removed)",
                    self.path.display()
                );
            }
            std::fs::remove_file(entry.path())
                .with_context(|| format!("remove {}", entry.path().display()))?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rocksdb_like(dir: &Path, cfs: &[&str]) {
        let options: String = cfs
            .iter()
            .map(|cf| format!("[CFOptions \"{cf}\"]\n  write_buffer_size=1\n\n"))
            .collect();
        for (name, text) in [
            ("CURRENT", "MANIFEST-000005\n".to_string()),
            ("IDENTITY", "x".into()),
            ("LOCK", String::new()),
            ("LOG", String::new()),
            ("LOG.old.1733", String::new()),
            ("MANIFEST-000005", String::new()),
            ("OPTIONS-000007", "[CFOptions \"default\"]\n".into()),
            ("OPTIONS-000011", options),
            ("000012.log", String::new()),
            ("000009.sst", "sst".into()),
        ] {
            std::fs::write(dir.join(name), text).expect("write");
        }
    }

    #[test]
    fn a_state_directory_is_recognised_by_its_task_column_families_and_wiped() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).expect("mkdir");
        rocksdb_like(
            &dir,
            &["default", "normalize-0", "inventory-12", "assemble-0"],
        );
        let checked = inspect(&dir).expect("a state dir");
        assert_eq!(checked.tasks, ["assemble-0", "inventory-12", "normalize-0"]);
        assert_eq!(checked.files, 10);
        assert!(checked
            .describe()
            .contains("tasks assemble-0, inventory-12, normalize-0"));
        assert_eq!(checked.wipe().expect("wipe"), 10);
        assert!(dir.is_dir(), "the directory itself stays");
        assert_eq!(std::fs::read_dir(&dir).expect("read").count(), 0);
    }

    #[test]
    fn absent_and_empty_directories_have_nothing_to_wipe() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let absent = inspect(&tmp.path().join("nope")).expect("absent");
        assert_eq!((absent.files, absent.wipe().expect("wipe")), (0, 0));
        let empty = inspect(tmp.path()).expect("empty");
        assert!(empty.describe().contains("nothing to wipe"));
        assert!(empty.lock().expect("lock").is_none());
    }

    #[test]
    fn anything_else_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A home directory, say.
        std::fs::write(tmp.path().join(".bashrc"), "x").expect("write");
        let err = inspect(tmp.path()).expect_err("refused").to_string();
        assert!(
            err.contains("\".bashrc\"") && err.contains("nothing was changed"),
            "{err}"
        );
        assert!(tmp.path().join(".bashrc").exists());

        // A RocksDB database of something else: no shelfsync task.
        let other = tmp.path().join("other");
        std::fs::create_dir(&other).expect("mkdir");
        rocksdb_like(&other, &["default", "users", "normalize"]);
        let err = inspect(&other).expect_err("refused").to_string();
        assert!(
            err.contains("no column family of a shelfsync task"),
            "{err}"
        );

        // A subdirectory inside, or a file as the state dir.
        let nested = tmp.path().join("nested");
        std::fs::create_dir_all(nested.join("000001.sst")).expect("mkdir");
        assert!(inspect(&nested).is_err());
        assert!(inspect(&tmp.path().join(".bashrc")).is_err());
    }

    #[test]
    fn rocksdb_file_names() {
        for ok in [
            "CURRENT",
            "LOG.old.1700000000123456",
            "MANIFEST-000005",
            "OPTIONS-000011.dbtmp",
            "000213.log",
            "000214.sst",
            "000001.blob",
        ] {
            assert!(is_rocksdb_file(ok), "{ok}");
        }
        for no in [
            "notes.txt",
            "OPTIONS-",
            "x.sst",
            "000214.sst.bak",
            "LOG.old.",
            "current",
        ] {
            assert!(!is_rocksdb_file(no), "{no}");
        }
        assert!(is_task("erp-inventory-3") && is_task("dedupe-0"));
        assert!(!is_task("default") && !is_task("inventory-") && !is_task("inventory-x"));
    }
}
