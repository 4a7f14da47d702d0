//! RocksDB state: one database per process ([`StateDb`]), one column family per task
//! ([`RocksStore`]), a single block cache and write-buffer manager sharing one memory budget.
//!
//! A `RocksStore` is a write-back cache over its column family: operators read through it and
//! write into an in-memory overlay; nothing reaches RocksDB until the epoch is acknowledged by
//! the broker and [`RocksStore::commit`] writes the overlay and the task checkpoint in one
//! atomic `WriteBatch`. RocksDB therefore only ever holds state whose epoch was fully
//! acknowledged, so local state is never wiped after a crash.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBWithThreadMode, Direction, IteratorMode,
    MultiThreaded, Options, WriteBatch, WriteBufferManager, WriteOptions,
};
use shelfsync_operators::store::Decoded;
use shelfsync_operators::StateStore;

use crate::error::{Error, Result};

type Db = DBWithThreadMode<MultiThreaded>;

/// The key of a task's checkpoint inside its column family. Operators' keys never start with
/// `0x00`, so their range scans never see it.
pub const CHECKPOINT_KEY: &[u8] = b"\x00checkpoint";

/// The key, next to the checkpoint and never in the changelog, of the changelog offset this
/// host's last committed epoch wrote up to (8 bytes, big-endian): a changelog that goes on past
/// it with another writer's records means another host owned the task since (see
/// `engine::restore`).
pub const CHANGELOG_END_KEY: &[u8] = b"\x00changelog-end";

/// The key, next to the checkpoint and never in the changelog, of how far a restore cut short
/// got (see `engine::restore`); removed when the restore finishes.
pub const RESTORE_PROGRESS_KEY: &[u8] = b"\x00restore-progress";

/// The key in the default column family of this state directory's writer id.
const WRITER_ID_KEY: &[u8] = b"shelfsync/writer-id";

/// One RocksDB database holding every task's store.
#[derive(Clone)]
pub struct StateDb {
    db: Arc<Db>,
    cf_options: Arc<Options>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").finish_non_exhaustive()
    }
}

fn options(budget_bytes: usize) -> (Options, Options) {
    // Half of the budget for the block cache, half for memtables; the write-buffer manager
    // charges memtables to the same cache, so the total stays within the budget.
    let cache = Cache::new_lru_cache(budget_bytes / 2);
    let wbm = WriteBufferManager::new_write_buffer_manager_with_cache(
        budget_bytes / 2,
        false,
        cache.clone(),
    );
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_bloom_filter(10.0, false);
    let mut cf = Options::default();
    cf.set_block_based_table_factory(&table);
    cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
    cf.set_write_buffer_size((budget_bytes / 8).clamp(1 << 20, 64 << 20));
    let mut db = cf.clone();
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.set_write_buffer_manager(&wbm);
    db.set_max_background_jobs(2);
    (db, cf)
}

impl StateDb {
    /// Opens (or creates) the database under `path` with a memory budget in bytes, reopening
    /// every column family found there.
    ///
    /// # Errors
    /// [`Error::State`] when RocksDB cannot open the directory (permissions, another process
    /// holds its lock, corruption).
    pub fn open(path: &Path, budget_bytes: usize) -> Result<Self> {
        let (db_opts, cf_opts) = options(budget_bytes);
        std::fs::create_dir_all(path)
            .map_err(|e| Error::State(format!("create {}: {e}", path.display())))?;
        let existing = Db::list_cf(&db_opts, path).unwrap_or_default();
        let cfs = existing
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_opts.clone()));
        let db = Db::open_cf_descriptors(&db_opts, path, cfs)
            .map_err(|e| Error::State(format!("open RocksDB at {}: {e}", path.display())))?;
        Ok(Self {
            db: Arc::new(db),
            cf_options: Arc::new(cf_opts),
        })
    }

    /// Opens the store of task `name`, creating its column family if needed.
    ///
    /// # Errors
    /// [`Error::State`] when the column family cannot be created.
    pub fn store(&self, name: &str) -> Result<RocksStore> {
        if self.db.cf_handle(name).is_none() {
            self.db
                .create_cf(name, &self.cf_options)
                .map_err(|e| Error::State(format!("create column family {name}: {e}")))?;
        }
        Ok(RocksStore {
            db: Arc::clone(&self.db),
            cf: name.to_string(),
            overlay: BTreeMap::new(),
            sealed: BTreeMap::new(),
            first_at_or_after: RefCell::new(None),
            read_error: RefCell::new(None),
            decoded: Decoded::default(),
        })
    }

    /// Drops the column family of a task that is gone for good.
    ///
    /// # Errors
    /// [`Error::State`] when RocksDB refuses.
    pub fn drop_store(&self, name: &str) -> Result<()> {
        if self.db.cf_handle(name).is_some() {
            self.db
                .drop_cf(name)
                .map_err(|e| Error::State(format!("drop column family {name}: {e}")))?;
        }
        Ok(())
    }

    /// Reads a committed value of task `name`'s store (what the last acknowledged epoch wrote),
    /// or `None` when the task has no column family here.
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB read error.
    pub fn read_committed(&self, name: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(cf) = self.db.cf_handle(name) else {
            return Ok(None);
        };
        self.db
            .get_cf(&cf, key)
            .map_err(|e| Error::State(format!("read {name}: {e}")))
    }

    /// Up to `limit` committed entries of task `name`'s store with keys in `[from, to)`, in key
    /// order (empty when the task has no column family here).
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB read error.
    pub fn scan_committed(
        &self,
        name: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(cf) = self.db.cf_handle(name) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(&cf, IteratorMode::From(from, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| Error::State(format!("scan {name}: {e}")))?;
            if k.as_ref() >= to || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The id this state directory writes into changelog headers (created on first use, kept
    /// for the life of the directory): changelog records of any other id were written by another
    /// host, or by a state directory that was wiped since.
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB error.
    pub fn writer_id(&self) -> Result<String> {
        if let Some(id) = self
            .db
            .get(WRITER_ID_KEY)
            .map_err(|e| Error::State(format!("read the writer id: {e}")))?
        {
            return Ok(String::from_utf8_lossy(&id).into_owned());
        }
        use sha2::{Digest, Sha256};
        let seed = format!(
            "{}/{}/{:?}/{}",
            std::process::id(),
            crate::clock::now_ms(),
            std::time::Instant::now(),
            self.db.path().display()
        );
        let id: String = Sha256::digest(seed.as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.db
            .put(WRITER_ID_KEY, id.as_bytes())
            .map_err(|e| Error::State(format!("write the writer id: {e}")))?;
        Ok(id)
    }

    /// Approximate memory RocksDB uses (memtables + block cache), in bytes.
    pub fn memory_usage(&self) -> u64 {
        let prop = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        prop("rocksdb.cur-size-all-mem-tables") + prop("rocksdb.block-cache-usage")
    }
}

/// A remembered scan start and the first committed key at or after it (`None`: none).
type FirstKey = (Vec<u8>, Option<Vec<u8>>);

/// A task's store: a write-back overlay over its column family.
pub struct RocksStore {
    db: Arc<Db>,
    cf: String,
    /// Writes of the current epoch: `Some(value)` for a put, `None` for a delete.
    overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Writes of the previous epoch, sealed (its changelog records are in flight) and not yet
    /// written to RocksDB: reads see them under the current epoch's (see [`Self::seal`]).
    sealed: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `(from, first committed key >= from)` of the last range scan from `from`, valid until
    /// the next [`commit`](Self::commit) (the only writer of the column family). Operators scan
    /// the same range start on every record (the TTL index: "anything due yet?"); this answers
    /// "nothing committed there" without creating a RocksDB iterator per record.
    first_at_or_after: RefCell<Option<FirstKey>>,
    /// The first read error since it was last taken. [`StateStore`] reads cannot fail, so a
    /// failed read answers "absent" to the operator and is remembered here; the engine takes it
    /// after every record and stops before that record's outputs leave (a wrong "absent" would
    /// otherwise become wrong outputs).
    read_error: RefCell<Option<Error>>,
    /// Values operators decoded this epoch (write-through, see [`Decoded`]); emptied at every
    /// seal, commit and discard, so it holds at most what one epoch touched.
    decoded: Decoded,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("cf", &self.cf)
            .field("pending", &self.overlay.len())
            .finish()
    }
}

impl RocksStore {
    /// Column family name.
    pub fn name(&self) -> &str {
        &self.cf
    }

    /// The epoch's pending writes in key order (`None` = delete).
    pub fn pending(&self) -> &BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        &self.overlay
    }

    /// Forgets the pending writes, the sealed epoch's too (the epochs were not acknowledged).
    pub fn discard(&mut self) {
        self.overlay.clear();
        self.sealed.clear();
        self.decoded.clear();
    }

    /// Seals the current epoch's writes: they stay readable beneath the next epoch's until
    /// [`commit_sealed`](Self::commit_sealed) writes them. Decoded values are dropped (the
    /// cache holds one epoch's keys).
    ///
    /// # Errors
    /// [`Error::Bug`] when the previous sealed epoch was not committed first.
    pub fn seal(&mut self) -> Result<()> {
        if !self.sealed.is_empty() {
            return Err(Error::Bug(format!(
                "{}: an epoch was sealed while the previous one is still in flight",
                self.cf
            )));
        }
        self.sealed = std::mem::take(&mut self.overlay);
        self.decoded.clear();
        Ok(())
    }

    /// Writes the sealed epoch plus `extra` (its checkpoint) in one atomic `WriteBatch`.
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB write error; the sealed writes are kept.
    pub fn commit_sealed(&mut self, extra: &[(&[u8], &[u8])]) -> Result<()> {
        let batch = std::mem::take(&mut self.sealed);
        let result = self.write(&batch, extra, true);
        if result.is_err() {
            self.sealed = batch;
        }
        result
    }

    /// The first read error since the last call, if a read failed.
    pub fn take_read_error(&self) -> Option<Error> {
        self.read_error.borrow_mut().take()
    }

    fn read_failed(&self, e: Error) {
        let mut slot = self.read_error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Reads a committed value, bypassing the overlay.
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB read error.
    pub fn get_committed(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self
            .db
            .cf_handle(&self.cf)
            .ok_or_else(|| Error::State(format!("column family {} vanished", self.cf)))?;
        self.db
            .get_cf(&cf, key)
            .map_err(|e| Error::State(format!("read {}: {e}", self.cf)))
    }

    /// Writes the overlay plus `extra` (e.g. the checkpoint) to RocksDB in **one atomic
    /// `WriteBatch`**: either all of it is durable or none. `wal = false` skips the WAL (used
    /// for bulk restore, which is re-done from the changelog after a crash).
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB write error; the overlay is kept so the caller may retry.
    pub fn commit(&mut self, extra: &[(&[u8], &[u8])], wal: bool) -> Result<()> {
        if !self.sealed.is_empty() {
            // Only the engine seals, and it commits through `commit_sealed` with the sealed
            // epoch's checkpoint: writing that epoch here would store it without one.
            return Err(Error::Bug(format!(
                "{}: commit while a sealed epoch is in flight",
                self.cf
            )));
        }
        let overlay = std::mem::take(&mut self.overlay);
        let result = self.write(&overlay, extra, wal);
        match result {
            Ok(()) => self.decoded.clear(),
            Err(_) => self.overlay = overlay,
        }
        result
    }

    fn write(
        &self,
        writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        extra: &[(&[u8], &[u8])],
        wal: bool,
    ) -> Result<()> {
        let cf = self
            .db
            .cf_handle(&self.cf)
            .ok_or_else(|| Error::State(format!("column family {} vanished", self.cf)))?;
        let mut batch = WriteBatch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.put_cf(&cf, k, v),
                None => batch.delete_cf(&cf, k),
            }
        }
        for (k, v) in extra {
            batch.put_cf(&cf, k, v);
        }
        let mut opts = WriteOptions::default();
        opts.disable_wal(!wal);
        // Whatever happens to the write, the committed state may have changed.
        self.first_at_or_after.replace(None);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| Error::State(format!("write batch to {}: {e}", self.cf)))
    }

    /// Flushes the column family's memtables to disk (after a restore written without WAL).
    ///
    /// # Errors
    /// [`Error::State`] on a RocksDB error.
    pub fn flush(&self) -> Result<()> {
        let cf = self
            .db
            .cf_handle(&self.cf)
            .ok_or_else(|| Error::State(format!("column family {} vanished", self.cf)))?;
        self.db
            .flush_cf(&cf)
            .map_err(|e| Error::State(format!("flush {}: {e}", self.cf)))
    }

    fn committed_range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if let Some((cached_from, first)) = &*self.first_at_or_after.borrow() {
            if cached_from.as_slice() == from && first.as_deref().is_none_or(|k| k >= to) {
                return Vec::new();
            }
        }
        let Some(cf) = self.db.cf_handle(&self.cf) else {
            self.read_failed(Error::State(format!("column family {} vanished", self.cf)));
            return Vec::new();
        };
        // No upper bound: the first key at or after `from` is remembered even when it lies
        // beyond `to`, so that the next scan from `from` to a `to` below it needs no iterator.
        let mut first = None;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(&cf, IteratorMode::From(from, Direction::Forward))
        {
            // A read error means disk trouble: answer what was read, remember nothing, and
            // report it (the engine stops before this record's outputs leave).
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    self.read_failed(Error::State(format!("scan {}: {e}", self.cf)));
                    return out;
                }
            };
            if first.is_none() {
                first = Some(k.to_vec());
            }
            if k.as_ref() >= to || out.len() >= limit {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        self.first_at_or_after.replace(Some((from.to_vec(), first)));
        out
    }
}

impl StateStore for RocksStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.overlay.get(key).or_else(|| self.sealed.get(key)) {
            Some(v) => v.clone(),
            None => self.get_committed(key).unwrap_or_else(|e| {
                self.read_failed(e);
                None
            }),
        }
    }

    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.decoded.forget(key);
        self.overlay.insert(key.to_vec(), Some(value.to_vec()));
    }

    fn delete(&mut self, key: &[u8]) {
        self.decoded.forget(key);
        self.overlay.insert(key.to_vec(), None);
    }

    fn decoded(&mut self) -> Option<&mut Decoded> {
        Some(&mut self.decoded)
    }

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to || limit == 0 {
            return Vec::new();
        }
        // Merge committed entries with the sealed epoch's writes, then the current epoch's:
        // the later layer wins and its deletes hide keys. Fetch enough committed rows that
        // deleted ones cannot starve the result.
        let (lo, hi) = (from.to_vec(), to.to_vec());
        let deletes = [&self.sealed, &self.overlay]
            .iter()
            .map(|layer| {
                layer
                    .range(lo.clone()..hi.clone())
                    .filter(|(_, v)| v.is_none())
                    .count()
            })
            .sum::<usize>();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self
            .committed_range(from, to, limit.saturating_add(deletes))
            .into_iter()
            .collect();
        for layer in [&self.sealed, &self.overlay] {
            for (k, v) in layer.range(lo.clone()..hi.clone()) {
                match v {
                    Some(v) => {
                        merged.insert(k.clone(), v.clone());
                    }
                    None => {
                        merged.remove(k);
                    }
                }
            }
        }
        merged.into_iter().take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_error_is_reported_not_read_as_an_absent_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let mut store = db.store("inventory-0").unwrap();
        store.put(b"k", b"v");
        store.commit(&[], true).unwrap();
        assert_eq!(store.get(b"k"), Some(b"v".to_vec()));
        assert!(store.take_read_error().is_none());
        // The column family disappears under the task (what a failing disk looks like here).
        db.drop_store("inventory-0").unwrap();
        assert_eq!(store.get(b"k"), None);
        let err = store
            .take_read_error()
            .expect("the failed read is remembered");
        assert!(err.to_string().contains("inventory-0"), "{err}");
        assert!(store.range(b"a", b"z", 10).is_empty());
        assert!(store.take_read_error().is_some(), "a failed scan too");
        assert!(store.take_read_error().is_none(), "taken once");
    }

    /// Pipelined epochs: a sealed epoch's writes stay readable beneath the next epoch's
    /// (which win, deletes included) until `commit_sealed` writes exactly them.
    #[test]
    fn a_sealed_epoch_is_read_beneath_the_next_and_committed_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let mut store = db.store("inventory-0").unwrap();
        store.put(b"a", b"committed");
        store.put(b"x", b"committed");
        store.commit(&[], true).unwrap();
        store.put(b"a", b"sealed");
        store.put(b"b", b"sealed");
        store.delete(b"x");
        store.seal().unwrap();
        assert!(store.pending().is_empty());
        assert!(store.seal().is_err(), "one epoch in flight at a time");
        store.put(b"b", b"next");
        store.put(b"c", b"next");
        store.delete(b"a");
        assert_eq!(store.get(b"a"), None);
        assert_eq!(store.get(b"b"), Some(b"next".to_vec()));
        assert_eq!(store.get(b"x"), None);
        let all = |s: &RocksStore| -> Vec<(Vec<u8>, Vec<u8>)> { s.range(b"a", b"z", 10) };
        assert_eq!(
            all(&store),
            vec![
                (b"b".to_vec(), b"next".to_vec()),
                (b"c".to_vec(), b"next".to_vec())
            ]
        );
        store.commit_sealed(&[(b"cp", b"1")]).unwrap();
        // RocksDB holds the sealed epoch alone; the next epoch is still pending.
        assert_eq!(store.get_committed(b"a").unwrap(), Some(b"sealed".to_vec()));
        assert_eq!(store.get_committed(b"b").unwrap(), Some(b"sealed".to_vec()));
        assert_eq!(store.get_committed(b"c").unwrap(), None);
        assert_eq!(store.get_committed(b"x").unwrap(), None);
        assert_eq!(store.get_committed(b"cp").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.pending().len(), 3);
        assert_eq!(store.get(b"a"), None);
        store.seal().unwrap();
        store.discard();
        assert_eq!(
            store.get(b"c"),
            None,
            "a discard drops the sealed epoch too"
        );
    }

    /// Decoded values live for one epoch: a commit (or a discard) empties them, so the cache
    /// never holds more than an epoch touched and never outlives a dropped epoch.
    #[test]
    fn decoded_values_last_one_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let mut store = db.store("inventory-0").unwrap();
        let keep = |store: &mut RocksStore| {
            store.put(b"s", b"1");
            store.decoded().unwrap().keep(b"s".to_vec(), 1u8);
        };
        keep(&mut store);
        store.commit(&[], true).unwrap();
        assert_eq!(store.decoded().unwrap().take::<u8>(b"s"), None);
        keep(&mut store);
        store.discard();
        assert_eq!(store.decoded().unwrap().take::<u8>(b"s"), None);
        keep(&mut store);
        assert_eq!(store.decoded().unwrap().take::<u8>(b"s"), Some(1));
    }

    #[test]
    fn rocks_store_passes_the_conformance_suite_before_and_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let mut n = 0;
        shelfsync_operators::store::conformance::run_all(|| {
            n += 1;
            db.store(&format!("t{n}")).unwrap()
        });
        // Same suite where every write is committed before reads go to RocksDB.
        shelfsync_operators::store::conformance::run_all(|| {
            n += 1;
            CommitEveryWrite(db.store(&format!("t{n}")).unwrap())
        });
    }

    /// A store that commits after every write, so reads exercise RocksDB, not the overlay.
    struct CommitEveryWrite(RocksStore);

    impl StateStore for CommitEveryWrite {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key)
        }
        fn put(&mut self, key: &[u8], value: &[u8]) {
            self.0.put(key, value);
            self.0.commit(&[], true).unwrap();
        }
        fn delete(&mut self, key: &[u8]) {
            self.0.delete(key);
            self.0.commit(&[], true).unwrap();
        }
        fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0.range(from, to, limit)
        }
    }

    #[test]
    fn repeated_scans_from_one_start_see_later_commits_and_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let mut s = db.store("inventory-0").unwrap();
        let keys = |v: Vec<(Vec<u8>, Vec<u8>)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        s.put(b"x:5", b"");
        s.commit(&[], true).unwrap();
        assert!(s.range(b"x:", b"x:3", 10).is_empty());
        // Answered from the remembered first key (x:5), then past it.
        assert!(s.range(b"x:", b"x:4", 10).is_empty());
        assert_eq!(keys(s.range(b"x:", b"x:6", 10)), vec![b"x:5".to_vec()]);
        s.put(b"x:2", b"");
        assert_eq!(keys(s.range(b"x:", b"x:4", 10)), vec![b"x:2".to_vec()]);
        s.commit(&[], true).unwrap();
        assert_eq!(keys(s.range(b"x:", b"x:4", 10)), vec![b"x:2".to_vec()]);
        s.delete(b"x:2");
        assert!(s.range(b"x:", b"x:4", 10).is_empty());
        s.commit(&[], true).unwrap();
        assert!(s.range(b"x:", b"x:4", 10).is_empty());
        assert_eq!(keys(s.range(b"x:", b"x:9", 10)), vec![b"x:5".to_vec()]);
        assert_eq!(keys(s.range(b"x:", b"x:9", 0)), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn overlay_deletes_hide_committed_keys_in_ranges_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = StateDb::open(dir.path(), 64 << 20).unwrap();
            let mut s = db.store("inventory-0").unwrap();
            for i in 0..10u8 {
                s.put(&[b'k', i], &[i]);
            }
            s.commit(&[(CHECKPOINT_KEY, b"cp")], true).unwrap();
            for i in 0..5u8 {
                s.delete(&[b'k', i]);
            }
            let got = s.range(b"k", b"l", 3);
            assert_eq!(
                got.iter().map(|(k, _)| k[1]).collect::<Vec<_>>(),
                vec![5, 6, 7]
            );
            // Not committed: the deletes vanish with the process.
        }
        let db = StateDb::open(dir.path(), 64 << 20).unwrap();
        let s = db.store("inventory-0").unwrap();
        assert_eq!(s.range(b"k", b"l", 100).len(), 10);
        assert_eq!(s.get(CHECKPOINT_KEY).as_deref(), Some(&b"cp"[..]));
        db.drop_store("inventory-0").unwrap();
    }
}
