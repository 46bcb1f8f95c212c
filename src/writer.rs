//! The writing side of a run database: creation, attempts, and the commit of buffered rows.
//!
//! One `Writer` exists per live run, owned by its `Run` behind a mutex that the background
//! flusher shares. Every method commits one redb transaction with `Durability::Immediate`, and
//! the step counter and summary change in the same transaction as the rows they describe.

use std::path::{Path, PathBuf};

use redb::{
    ConcurrencyMode, Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction,
};

use crate::error::{Context, Error, Result};
use crate::format::batch::RowBatch;
use crate::format::block::{self, BLOCK_ROWS, DecodedBlock, Encoder};
use crate::format::records::{AttemptRecord, Progress, RunRecord, StateTag};
use crate::format::tables::{ATTEMPTS, BLOCKS, KEY_FORMAT, KEY_PROGRESS, KEY_RUN, META, METRICS};
use crate::format::{Corrupt, RUN_FORMAT_VERSION};
use crate::state::RunState;
use crate::sys;

/// Builds the redb handle every open of a run database uses: one mode for every process.
pub(crate) fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    // Runs are written append-only and read sequentially: a small cache is enough.
    builder.set_cache_size(16 << 20);
    builder
}

/// How an attempt ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    pub(crate) state: RunState,
    pub(crate) exit_code: Option<i32>,
}

/// What one commit stores besides rows.
#[derive(Default)]
pub(crate) struct Extras<'a> {
    /// Metric names interned since the last commit, in id order.
    pub(crate) new_names: &'a [String],
    /// Values set with `set_summary`, applied after the rows.
    pub(crate) summary_sets: &'a [(u32, f64)],
    /// A state change that takes effect with these rows.
    pub(crate) state: Option<Ending>,
    /// Whether the state change closes the current attempt.
    pub(crate) close_attempt: bool,
}

pub(crate) struct Writer {
    db: Database,
    path: PathBuf,
    progress: Progress,
    summary: Vec<Option<f64>>,
    names_stored: u32,
    attempt: u32,
    /// How the run stood before this attempt began (`None` for a new run).
    previous: Option<Ending>,
    encoder: Encoder,
    decoded: DecodedBlock,
    merged: RowBatch,
    block_bytes: Vec<u8>,
}

impl Writer {
    /// Creates the database of a new run at `path`: written under a temporary name and renamed
    /// into place, so that a run either exists whole or not at all.
    pub(crate) fn create(path: &Path, record: &RunRecord, attempt: &AttemptRecord) -> Result<Writer> {
        let temporary = path.with_extension("redb.partial");
        match std::fs::remove_file(&temporary) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&temporary, error)),
            _ => {}
        }
        let db = builder().create(&temporary).at(&temporary)?;
        let progress = Progress {
            state: RunState::Running.into(),
            exit_code: None,
            next_step: 0,
            last_step: None,
            rows: 0,
            updated_at_ms: attempt.started_at_ms,
            summary: Vec::new(),
        };
        let tx = begin(&db, &temporary)?;
        {
            let mut meta = tx.open_table(META).at(&temporary)?;
            meta.insert(KEY_FORMAT, RUN_FORMAT_VERSION.to_le_bytes().as_slice()).at(&temporary)?;
            meta.insert(KEY_RUN, record.encode().as_slice()).at(&temporary)?;
            meta.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&temporary)?;
            tx.open_table(ATTEMPTS).at(&temporary)?.insert(1, attempt.encode().as_slice()).at(&temporary)?;
            tx.open_table(METRICS).at(&temporary)?;
            tx.open_table(BLOCKS).at(&temporary)?;
        }
        tx.commit().at(&temporary)?;
        std::fs::rename(&temporary, path).at(path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(Writer::from_parts(db, path, progress, Vec::new(), 0, 1))
    }

    /// Opens an existing run database for writing (the caller holds the run's lock).
    pub(crate) fn open(path: &Path) -> Result<Writer> {
        let db = builder().open(path).at(path)?;
        let tx = db.begin_read().at(path)?;
        let meta = tx.open_table(META).at(path)?;
        check_format(path, meta.get(KEY_FORMAT).at(path)?.as_ref().map(redb::AccessGuard::value))?;
        let progress =
            Progress::decode(meta.get(KEY_PROGRESS).at(path)?.ok_or(Corrupt("no progress record")).at(path)?.value())
                .at(path)?;
        let names = u32::try_from(tx.open_table(METRICS).at(path)?.len().at(path)?)
            .map_err(|_| Error::corrupt(path, "too many metrics"))?;
        let attempt = match tx.open_table(ATTEMPTS).at(path)?.last().at(path)? {
            Some((number, _)) => number.value(),
            None => 0,
        };
        drop(meta);
        drop(tx);
        let mut summary = vec![None; names as usize];
        for &(id, value) in &progress.summary {
            let slot = summary.get_mut(id as usize).ok_or(Corrupt("summary names an unknown metric")).at(path)?;
            *slot = Some(value);
        }
        Ok(Writer::from_parts(db, path, progress, summary, names, attempt))
    }

    fn from_parts(
        db: Database,
        path: &Path,
        progress: Progress,
        summary: Vec<Option<f64>>,
        names_stored: u32,
        attempt: u32,
    ) -> Writer {
        Writer {
            db,
            path: path.to_path_buf(),
            progress,
            summary,
            names_stored,
            attempt,
            previous: None,
            encoder: Encoder::default(),
            decoded: DecodedBlock::default(),
            merged: RowBatch::default(),
            block_bytes: Vec::new(),
        }
    }

    /// The stored state, as last committed.
    pub(crate) fn stored_state(&self) -> Result<RunState> {
        RunState::try_from(self.progress.state).at(&self.path)
    }

    pub(crate) fn next_step(&self) -> u64 {
        self.progress.next_step
    }

    pub(crate) fn last_step(&self) -> Option<u64> {
        self.progress.last_step
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The metric names stored so far, in id order.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read().at(&self.path)?;
        let table = tx.open_table(METRICS).at(&self.path)?;
        let mut names = Vec::new();
        for entry in table.iter().at(&self.path)? {
            let (_, name) = entry.at(&self.path)?;
            names.push(name.value().to_string());
        }
        Ok(names)
    }

    /// Starts a new attempt on an existing run: closes the previous attempt if its process died,
    /// applies `update` to the run record, and marks the run running.
    pub(crate) fn begin_attempt(&mut self, attempt: &AttemptRecord, update: impl FnOnce(&mut RunRecord)) -> Result<()> {
        let path = self.path.clone();
        let died_as = self.stored_state()?.without_writer();
        let previous = Ending { state: died_as, exit_code: self.progress.exit_code };
        let tx = begin(&self.db, &path)?;
        {
            let mut attempts = tx.open_table(ATTEMPTS).at(&path)?;
            let last = attempts.get(self.attempt).at(&path)?.map(|last| AttemptRecord::decode(last.value()));
            if let Some(previous) = last {
                let mut previous = previous.at(&path)?;
                if previous.outcome.is_none() {
                    previous.ended_at_ms = Some(self.progress.updated_at_ms);
                    previous.last_step = self.progress.last_step;
                    previous.outcome = Some(died_as.into());
                    attempts.insert(self.attempt, previous.encode().as_slice()).at(&path)?;
                }
            }
            let number = self.attempt.checked_add(1).ok_or(Corrupt("too many attempts")).at(&path)?;
            attempts.insert(number, attempt.encode().as_slice()).at(&path)?;
            let mut meta = tx.open_table(META).at(&path)?;
            let mut record =
                RunRecord::decode(meta.get(KEY_RUN).at(&path)?.ok_or(Corrupt("no run record")).at(&path)?.value())
                    .at(&path)?;
            update(&mut record);
            meta.insert(KEY_RUN, record.encode().as_slice()).at(&path)?;
            self.progress.state = RunState::Running.into();
            self.progress.exit_code = None;
            self.progress.updated_at_ms = attempt.started_at_ms;
            meta.insert(KEY_PROGRESS, self.progress.encode().as_slice()).at(&path)?;
            self.attempt = number;
        }
        tx.commit().at(&path)?;
        self.previous = Some(previous);
        Ok(())
    }

    /// How the run stood before this attempt began; `None` for a run this attempt created.
    pub(crate) fn previous(&self) -> Option<Ending> {
        self.previous
    }

    /// Stores `rows` (which start at or after the last stored step) with `extras`, in one
    /// durable transaction. On error nothing is stored and `self` is unchanged.
    pub(crate) fn commit(&mut self, rows: &RowBatch, extras: &Extras<'_>) -> Result<()> {
        let path = self.path.clone();
        let mut progress = self.progress.clone();
        let mut summary = self.summary.clone();
        let tx = begin(&self.db, &path)?;
        {
            if !extras.new_names.is_empty() {
                let mut metrics = tx.open_table(METRICS).at(&path)?;
                for (offset, name) in extras.new_names.iter().enumerate() {
                    let id = self.names_stored + u32::try_from(offset).unwrap_or(u32::MAX);
                    metrics.insert(id, name.as_str()).at(&path)?;
                }
                summary.resize(summary.len() + extras.new_names.len(), None);
            }
            if !rows.is_empty() {
                self.store_rows(&tx, rows, &mut progress)?;
                for (&metric, &value) in rows.metrics.iter().zip(&rows.values) {
                    if let Some(slot) = summary.get_mut(metric as usize) {
                        *slot = Some(value);
                    }
                }
            }
            for &(metric, value) in extras.summary_sets {
                if let Some(slot) = summary.get_mut(metric as usize) {
                    *slot = Some(value);
                }
            }
            progress.summary = summary
                .iter()
                .enumerate()
                .filter_map(|(id, value)| Some((u32::try_from(id).ok()?, (*value)?)))
                .collect();
            progress.updated_at_ms = sys::now_ms();
            if let Some(ending) = extras.state {
                progress.state = ending.state.into();
                progress.exit_code = ending.exit_code;
                if extras.close_attempt {
                    let mut attempts = tx.open_table(ATTEMPTS).at(&path)?;
                    let current =
                        attempts.get(self.attempt).at(&path)?.map(|current| AttemptRecord::decode(current.value()));
                    let mut record = current.ok_or(Corrupt("current attempt is missing")).at(&path)?.at(&path)?;
                    record.ended_at_ms = Some(progress.updated_at_ms);
                    record.last_step = progress.last_step;
                    record.outcome = Some(StateTag::from(ending.state));
                    record.exit_code = ending.exit_code;
                    attempts.insert(self.attempt, record.encode().as_slice()).at(&path)?;
                }
            }
            tx.open_table(META).at(&path)?.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&path)?;
        }
        tx.commit().at(&path)?;
        self.progress = progress;
        self.summary = summary;
        self.names_stored += u32::try_from(extras.new_names.len()).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Appends rows as blocks, first topping up the last stored block when it is short or when
    /// the first new row continues its last step.
    fn store_rows(&mut self, tx: &WriteTransaction, rows: &RowBatch, progress: &mut Progress) -> Result<()> {
        let path = &self.path;
        let mut blocks = tx.open_table(BLOCKS).at(path)?;
        let first_new = rows.first_step().unwrap_or_default();
        let mut source = rows;
        let mut merged_rows = 0;
        let last = blocks.last().at(path)?.map(|(key, value)| (key.value(), value.value().to_vec()));
        if let Some((key, bytes)) = last {
            let header = block::header(&bytes).at(path)?;
            if header.rows < BLOCK_ROWS || header.last_step == first_new {
                block::decode(&bytes, &mut self.decoded).at(path)?;
                self.merged.clear();
                self.decoded.append_to(&mut self.merged);
                self.merged.append(rows);
                blocks.remove(key).at(path)?;
                source = &self.merged;
                merged_rows = header.rows;
            }
        }
        let mut start = 0;
        while start < source.rows() {
            let end = (start + BLOCK_ROWS).min(source.rows());
            self.block_bytes.clear();
            self.encoder.encode(source, start..end, &mut self.block_bytes);
            blocks.insert(source.steps[start], self.block_bytes.as_slice()).at(path)?;
            start = end;
        }
        let added = (source.rows() - merged_rows) as u64;
        let last_step = source.last_step().unwrap_or_default();
        progress.rows += added;
        progress.last_step = Some(last_step);
        progress.next_step = progress.next_step.max(last_step.saturating_add(1));
        Ok(())
    }
}

fn begin(db: &Database, path: &Path) -> Result<WriteTransaction> {
    let mut tx = db.begin_write().at(path)?;
    tx.set_durability(Durability::Immediate)
        .map_err(|error| Error::Storage { path: path.to_path_buf(), source: Box::new(error) })?;
    Ok(tx)
}

/// Checks a run database's format marker.
pub(crate) fn check_format(path: &Path, marker: Option<&[u8]>) -> Result<()> {
    let bytes: [u8; 4] = marker.and_then(|m| m.try_into().ok()).ok_or(Corrupt("no format marker")).at(path)?;
    let found = u32::from_le_bytes(bytes);
    if found > RUN_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat { path: path.to_path_buf(), found, supported: RUN_FORMAT_VERSION });
    }
    Ok(())
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
