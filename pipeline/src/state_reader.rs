//! A stopped instance's state directory, read only (`shelfsync state inspect`): its tasks (one
//! RocksDB column family each), their entries and checkpoints. Opening it read only takes no
//! lock and writes nothing; a directory a running instance is writing may show an older state.

use std::path::Path;

use rocksdb::{DBWithThreadMode, Direction, IteratorMode, MultiThreaded, Options};

use crate::engine::Checkpoint;
use crate::error::{Error, Result};
use crate::rocks_store::CHECKPOINT_KEY;

/// The state directory, opened read only.
pub struct StateReader {
    db: DBWithThreadMode<MultiThreaded>,
    tasks: Vec<String>,
}

impl StateReader {
    /// Opens the RocksDB under `path` read only, with every column family (task) there.
    ///
    /// # Errors
    /// [`Error::State`] when `path` holds no RocksDB or it cannot be read.
    pub fn open(path: &Path) -> Result<Self> {
        let opts = Options::default();
        let cfs = DBWithThreadMode::<MultiThreaded>::list_cf(&opts, path).map_err(|e| {
            Error::State(format!(
                "{} is not a shelfsync state directory (no RocksDB there: {e})",
                path.display()
            ))
        })?;
        let db = DBWithThreadMode::<MultiThreaded>::open_cf_for_read_only(&opts, path, &cfs, false)
            .map_err(|e| Error::State(format!("open {} read only: {e}", path.display())))?;
        let mut tasks: Vec<String> = cfs.into_iter().filter(|c| c != "default").collect();
        tasks.sort();
        Ok(Self { db, tasks })
    }

    /// The tasks with a store here, sorted.
    pub fn tasks(&self) -> &[String] {
        &self.tasks
    }

    /// The value of `key` in `task`'s store.
    ///
    /// # Errors
    /// [`Error::State`] when the task has no store here or RocksDB fails.
    pub fn get(&self, task: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self
            .db
            .cf_handle(task)
            .ok_or_else(|| Error::State(format!("no store of task {task} here")))?;
        self.db
            .get_cf(&cf, key)
            .map_err(|e| Error::State(format!("read {task}: {e}")))
    }

    /// The task's checkpoint, if it has one.
    ///
    /// # Errors
    /// [`Error::State`] when it cannot be read or decoded.
    pub fn checkpoint(&self, task: &str) -> Result<Option<Checkpoint>> {
        self.get(task, CHECKPOINT_KEY)?
            .map(|b| Checkpoint::decode(&b))
            .transpose()
    }

    /// Calls `f` on every entry of `task`'s store whose key starts with `prefix`, in key order,
    /// until it returns `false`.
    ///
    /// # Errors
    /// [`Error::State`] when the task has no store here or RocksDB fails.
    pub fn scan(
        &self,
        task: &str,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let cf = self
            .db
            .cf_handle(task)
            .ok_or_else(|| Error::State(format!("no store of task {task} here")))?;
        for item in self
            .db
            .iterator_cf(&cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| Error::State(format!("read {task}: {e}")))?;
            if !k.starts_with(prefix) || !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }
}
