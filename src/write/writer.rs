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
use crate::files::sync_dir;
use crate::format::batch::RowBatch;
use crate::format::journal::{Entry, JournalMark};
use crate::format::records::{
    AttemptRecord, BranchRecord, CheckpointRecord, ForkOrigin, Progress, RunRecord, StateTag,
};
use crate::format::row_chunk;
use crate::format::summary::ChunkSummary;
use crate::format::tables::{
    ARCHIVE_POINTS, ARCHIVE_ROWS, ARCHIVE_SUMMARIES, ATTEMPTS, BRANCHES, CHECKPOINTS, KEY_FORMAT, KEY_JOURNAL,
    KEY_PROGRESS, KEY_RUN, META, METRICS, POINTS, ROWS, SAMPLE_SUMMARIES, SAMPLES, SUMMARIES,
};
use crate::format::{Corrupt, RUN_FORMAT_VERSION};
use crate::guard;
use crate::state::RunState;
use crate::sys;
use crate::write::chunks::{self, ChunkSize, Scratch};

/// Builds the redb handle every open of a run database uses: one mode for every process.
pub(crate) fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    // Runs are written append-only and read sequentially: a small cache is enough.
    builder.set_cache_size(16 << 20);
    builder
}

/// Where a resuming attempt rewinds the run before it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RewindTarget {
    /// To this step (`resume_from`, or the latest checkpoint's step).
    Step(u64),
    /// Before every row of the run's own (a resume from checkpoint with none on disk).
    Everything,
}

impl RewindTarget {
    /// The step rewound to; `None` before every row.
    fn step(self) -> Option<u64> {
        match self {
            RewindTarget::Step(to) => Some(to),
            RewindTarget::Everything => None,
        }
    }
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
    /// A checkpoint recorded with these rows (its step is among the stored rows after them).
    pub(crate) checkpoint: Option<&'a CheckpointRecord>,
    /// Samples of time-indexed series: (metric id, time ms, value).
    pub(crate) samples: &'a [(u32, u64, f64)],
    /// What becomes of the journal's mark.
    pub(crate) journal: JournalUpdate,
}

/// What a commit does to the journal's mark (see [`crate::write::journal`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum JournalUpdate {
    /// Leaves it as it is: no journal, or a commit that is not a fold.
    #[default]
    Keep,
    /// A fold: the records from here on are not in the database.
    Set(JournalMark),
    /// Every record is in the database and the journal is no longer written.
    Clear,
}

/// How to open a writer again after a failed commit (see [`Writer::reopen_plan`]).
#[derive(Debug, Clone)]
pub(crate) struct Reopen {
    path: PathBuf,
    previous: Option<Ending>,
    size: ChunkSize,
    /// Names stored before the failed commit.
    names_stored: u32,
}

/// What a commit that reported failure stored all the same: an error from a sync or from the
/// header write can come after the commit reached the file. The caller drops these from its
/// buffer before retrying, or the retry would store them twice.
pub(crate) struct Landed {
    /// How many of the buffered new metric names are stored already.
    pub(crate) names: usize,
    /// Buffered rows before this step are stored already (the row at it merges, harmlessly).
    pub(crate) rows_before: Option<u64>,
}

impl Reopen {
    /// Opens the database again, in the state of its last durable commit, and says what of the
    /// failed commit landed.
    pub(crate) fn open(&self) -> Result<(Writer, Landed)> {
        // Not replayed: the journal's records are this writer's own, still buffered.
        let mut writer = guard::catch(&self.path, || Ok(Writer::open_unguarded(&self.path)?.0))?;
        writer.previous = self.previous;
        writer.set_chunk_size(self.size);
        let names = writer.names_stored.saturating_sub(self.names_stored) as usize;
        let landed = Landed { names, rows_before: writer.progress.last_step };
        Ok((writer, landed))
    }
}

/// What a crashed writer's journal records store (see [`Writer::replay`]).
#[derive(Default)]
struct Replay {
    rows: RowBatch,
    names: Vec<String>,
    sets: Vec<(u32, f64)>,
    samples: Vec<(u32, u64, f64)>,
}

/// What a fork starts from, computed from its parent's history by the store.
pub(crate) struct ForkSeed {
    pub(crate) names: Vec<String>,
    pub(crate) rows: u64,
}

pub(crate) struct Writer {
    db: Database,
    path: PathBuf,
    progress: Progress,
    /// Last logged value of each metric, by id (the `summary` of the progress record).
    logged: Vec<Option<f64>>,
    fork: Option<ForkOrigin>,
    names_stored: u32,
    attempt: u32,
    /// How the run stood before this attempt began (`None` for a new run).
    previous: Option<Ending>,
    size: ChunkSize,
    scratch: Scratch,
    /// The file's length when this writer opened it (0 for a run it created), against which
    /// `compact` judges whether the attempt left enough behind to be worth compacting.
    opened_len: u64,
}

/// Commits of at least this many rows write large chunks (see [`Writer::size_for`]).
const LARGE_COMMIT_ROWS: usize = 64;

/// Files at least this long are compacted at the end of an attempt only if it grew them by an
/// eighth: compaction walks the whole file (0.2 s at 10^7 steps), while an attempt that added a
/// little to a long run leaves a few pages of slack (for one row added to 10^5 steps, 3 %).
const COMPACT_ALWAYS_BELOW: u64 = 16 << 20;

/// Whether a file of `len` bytes, `opened_len` when the attempt began, is worth compacting.
fn worth_compacting(opened_len: u64, len: u64) -> bool {
    len < COMPACT_ALWAYS_BELOW || len.saturating_sub(opened_len) >= opened_len / 8
}

impl Writer {
    /// Creates the database of a new run at `path`: written under a temporary name and renamed
    /// into place, so that a run either exists whole or not at all.
    pub(crate) fn create(
        path: &Path,
        record: &RunRecord,
        attempt: &AttemptRecord,
        seed: Option<&ForkSeed>,
    ) -> Result<Writer> {
        guard::catch(path, || Writer::create_unguarded(path, record, attempt, seed))
    }

    fn create_unguarded(
        path: &Path,
        record: &RunRecord,
        attempt: &AttemptRecord,
        seed: Option<&ForkSeed>,
    ) -> Result<Writer> {
        let temporary = path.with_extension("redb.partial");
        match std::fs::remove_file(&temporary) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&temporary, error)),
            _ => {}
        }
        let db = open_database(&temporary, true)?;
        let fork = record.forked_from.as_ref();
        let progress = Progress {
            state: RunState::Running.into(),
            exit_code: None,
            next_step: fork.map_or(0, |fork| fork.step.saturating_add(1)),
            last_step: fork.and_then(|fork| fork.inherited_last),
            rows: seed.map_or(0, |seed| seed.rows),
            updated_at_ms: attempt.started_at_ms,
            summary: fork.map(|fork| fork.inherited_summary.clone()).unwrap_or_default(),
            pinned: Vec::new(),
        };
        let names = seed.map(|seed| seed.names.as_slice()).unwrap_or_default();
        let tx = begin(&db, &temporary)?;
        {
            let mut meta = tx.open_table(META).at(&temporary)?;
            meta.insert(KEY_FORMAT, RUN_FORMAT_VERSION.to_le_bytes().as_slice()).at(&temporary)?;
            meta.insert(KEY_RUN, record.encode().as_slice()).at(&temporary)?;
            meta.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&temporary)?;
            tx.open_table(ATTEMPTS).at(&temporary)?.insert(1, attempt.encode().as_slice()).at(&temporary)?;
            let mut metrics = tx.open_table(METRICS).at(&temporary)?;
            for (id, name) in (0u32..).zip(names) {
                metrics.insert(id, name.as_str()).at(&temporary)?;
            }
            tx.open_table(ROWS).at(&temporary)?;
            tx.open_table(POINTS).at(&temporary)?;
            tx.open_table(SUMMARIES).at(&temporary)?;
            tx.open_table(BRANCHES).at(&temporary)?;
            tx.open_table(ARCHIVE_ROWS).at(&temporary)?;
            tx.open_table(ARCHIVE_POINTS).at(&temporary)?;
            tx.open_table(ARCHIVE_SUMMARIES).at(&temporary)?;
            tx.open_table(CHECKPOINTS).at(&temporary)?;
            tx.open_table(SAMPLES).at(&temporary)?;
            tx.open_table(SAMPLE_SUMMARIES).at(&temporary)?;
        }
        tx.commit().at(&temporary)?;
        std::fs::rename(&temporary, path).at(path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        let names_stored = u32::try_from(names.len()).unwrap_or(u32::MAX);
        Writer::from_parts(db, path, progress, record.forked_from.clone(), names_stored, 1, 0)
    }

    /// Opens an existing run database for writing (the caller holds the run's lock), and
    /// replays the journal records a crashed writer left (see [`Writer::replay`]).
    pub(crate) fn open(path: &Path) -> Result<Writer> {
        guard::catch(path, || {
            let (mut writer, mark) = Writer::open_unguarded(path)?;
            if let Some(mark) = mark {
                writer.replay(mark)?;
            }
            Ok(writer)
        })
    }

    /// Opens the database, and says where the journal's records start if it has a mark.
    fn open_unguarded(path: &Path) -> Result<(Writer, Option<JournalMark>)> {
        // Unknown, it counts as empty: the attempt's end then compacts, as it always did.
        let opened_len = std::fs::metadata(path).map_or(0, |meta| meta.len());
        let db = open_database(path, false)?;
        let tx = db.begin_read().at(path)?;
        let meta = tx.open_table(META).at(path)?;
        check_format(path, meta.get(KEY_FORMAT).at(path)?.as_ref().map(redb::AccessGuard::value))?;
        let progress =
            Progress::decode(meta.get(KEY_PROGRESS).at(path)?.ok_or(Corrupt("no progress record")).at(path)?.value())
                .at(path)?;
        let record = RunRecord::decode(meta.get(KEY_RUN).at(path)?.ok_or(Corrupt("no run record")).at(path)?.value())
            .at(path)?;
        let names = u32::try_from(tx.open_table(METRICS).at(path)?.len().at(path)?)
            .map_err(|_| Error::corrupt(path, "too many metrics"))?;
        let attempt = match tx.open_table(ATTEMPTS).at(path)?.last().at(path)? {
            Some((number, _)) => number.value(),
            None => 0,
        };
        let mark = match meta.get(KEY_JOURNAL).at(path)? {
            Some(bytes) => Some(JournalMark::decode(bytes.value()).at(path)?),
            None => None,
        };
        drop(meta);
        drop(tx);
        Ok((Writer::from_parts(db, path, progress, record.forked_from, names, attempt, opened_len)?, mark))
    }

    /// Stores the rows of the journal's records from `mark` on, as the log calls that wrote
    /// them would have had them committed, and clears the mark, in one transaction; then
    /// removes the journal, which no mark names any more. A record that cannot follow what is
    /// stored (a step that goes back, a name or metric out of sequence) ends the replay, as a
    /// record cut short does: something other than the writer of these rows left it.
    fn replay(&mut self, mark: JournalMark) -> Result<()> {
        let entries = crate::write::journal::read(&self.path, mark)?;
        let Replay { rows, names, sets, samples } = self.replayable(&entries);
        let extras = Extras {
            new_names: &names,
            summary_sets: &sets,
            samples: &samples,
            journal: JournalUpdate::Clear,
            ..Extras::default()
        };
        self.commit_unguarded(&rows, &extras)?;
        // Best effort: a journal left behind is stale, and the next durable attempt reuses it.
        let _ = std::fs::remove_file(crate::write::journal::path_for(&self.path));
        Ok(())
    }

    /// What `entries` store, up to the first that cannot follow.
    fn replayable(&self, entries: &[Entry]) -> Replay {
        let Replay { mut rows, mut names, mut sets, mut samples } = Replay::default();
        let mut merge_step = self.own_last_step();
        let mut next_step = self.progress.next_step;
        for entry in entries {
            let known = u64::from(self.names_stored) + names.len() as u64;
            let first = u64::from(entry.first_name);
            if first > known {
                break;
            }
            let skip = usize::try_from(known - first).unwrap_or(usize::MAX);
            let added = entry.names.get(skip..).unwrap_or_default();
            let count = known + added.len() as u64;
            let sampled = entry.samples.iter().map(|&(id, _, _)| id);
            let ids_known = entry
                .points
                .iter()
                .chain(&entry.sets)
                .map(|&(id, _)| id)
                .chain(sampled)
                .all(|id| u64::from(id) < count);
            let step_follows = entry.step >= next_step || Some(entry.step) == merge_step;
            if !ids_known || !step_follows || entry.step == u64::MAX {
                break;
            }
            names.extend(added.iter().map(ToString::to_string));
            sets.extend_from_slice(&entry.sets);
            // As the log call does: a logged value replaces a value set before it.
            sets.retain(|(id, _)| !entry.points.iter().any(|(point, _)| point == id));
            rows.push_row(entry.step, entry.time_ms, &entry.points);
            samples.extend_from_slice(&entry.samples);
            merge_step = Some(entry.step);
            next_step = entry.step + 1;
        }
        Replay { rows, names, sets, samples }
    }

    fn from_parts(
        db: Database,
        path: &Path,
        progress: Progress,
        fork: Option<ForkOrigin>,
        names_stored: u32,
        attempt: u32,
        opened_len: u64,
    ) -> Result<Writer> {
        let mut logged = vec![None; names_stored as usize];
        for &(id, value) in &progress.summary {
            let slot = logged.get_mut(id as usize).ok_or(Corrupt("summary names an unknown metric")).at(path)?;
            *slot = Some(value);
        }
        Ok(Writer {
            db,
            path: path.to_path_buf(),
            progress,
            logged,
            fork,
            names_stored,
            attempt,
            previous: None,
            size: ChunkSize::Large,
            scratch: Scratch::default(),
            opened_len,
        })
    }

    /// The run database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How many metric names are stored.
    pub(crate) fn names_stored(&self) -> u32 {
        self.names_stored
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

    /// The run this one was forked from and the step it was forked at, for a fork.
    pub(crate) fn fork_origin(&self) -> Option<(String, u64)> {
        self.fork.as_ref().map(|fork| (fork.run.clone(), fork.step))
    }

    /// The last step of this run's own rows, the one a `log_at` may merge into: `None` while a
    /// fork's last row is its parent's (inherited rows are read from the parent, never merged).
    pub(crate) fn own_last_step(&self) -> Option<u64> {
        let inherited = |last: &u64| self.fork.as_ref().is_some_and(|fork| *last <= fork.step);
        self.progress.last_step.filter(|last| !inherited(last))
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run's checkpoints as stored, with their files' existence checked now.
    pub(crate) fn checkpoints(&self) -> Result<Vec<crate::checkpoint::Checkpoint>> {
        guard::catch(&self.path, || {
            let tx = self.db.begin_read().at(&self.path)?;
            let records = read_checkpoints(&tx, &self.path)?;
            Ok(records.into_iter().map(|(n, r)| crate::checkpoint::Checkpoint::from_record(n, r)).collect())
        })
    }

    /// The metric names stored so far, in id order.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        guard::catch(&self.path, || self.names_unguarded())
    }

    fn names_unguarded(&self) -> Result<Vec<String>> {
        let tx = self.db.begin_read().at(&self.path)?;
        let table = tx.open_table(METRICS).at(&self.path)?;
        let mut names = Vec::new();
        for entry in table.iter().at(&self.path)? {
            let (_, name) = entry.at(&self.path)?;
            names.push(name.value().to_string());
        }
        Ok(names)
    }

    /// Starts a new attempt on an existing run, in one transaction: closes the previous attempt
    /// if its process died, rewinds to `rewind_to` if given (as `resume_from` asks), records
    /// the attempt as starting at the step that follows, applies `update` to the run record,
    /// and marks the run running. The attempt's `first_step` is set here, after the rewind.
    /// Returns the run record as updated.
    pub(crate) fn begin_attempt(
        &mut self,
        id: &str,
        attempt: AttemptRecord,
        rewind: Option<RewindTarget>,
        update: impl FnOnce(&mut RunRecord),
    ) -> Result<RunRecord> {
        let path = self.path.clone();
        guard::catch(&path, || self.begin_attempt_unguarded(id, attempt, rewind, update))
    }

    fn begin_attempt_unguarded(
        &mut self,
        id: &str,
        mut attempt: AttemptRecord,
        rewind: Option<RewindTarget>,
        update: impl FnOnce(&mut RunRecord),
    ) -> Result<RunRecord> {
        let path = self.path.clone();
        let died_as = self.stored_state()?.without_writer();
        let previous = Ending { state: died_as, exit_code: self.progress.exit_code };
        let rewind_to = match rewind {
            Some(target) => self.rewind_plan(id, target)?,
            None => None,
        };
        let number = self.attempt.checked_add(1).ok_or(Corrupt("too many attempts")).at(&path)?;
        let mut progress = self.progress.clone();
        let mut logged = self.logged.clone();
        let tx = begin(&self.db, &path)?;
        self.close_dead_attempt(&tx, died_as)?;
        if let Some(target) = rewind_to {
            self.rewind_in(&tx, target.step(), number, &mut progress, &mut logged)?;
        }
        let record = {
            // Recorded after the rewind, so that it neither starts at the step the rewind undid
            // nor counts among the attempts whose rows the branch holds.
            attempt.first_step = progress.next_step;
            tx.open_table(ATTEMPTS).at(&path)?.insert(number, attempt.encode().as_slice()).at(&path)?;
            let mut meta = tx.open_table(META).at(&path)?;
            let mut record =
                RunRecord::decode(meta.get(KEY_RUN).at(&path)?.ok_or(Corrupt("no run record")).at(&path)?.value())
                    .at(&path)?;
            update(&mut record);
            meta.insert(KEY_RUN, record.encode().as_slice()).at(&path)?;
            progress.state = RunState::Running.into();
            progress.exit_code = None;
            progress.updated_at_ms = attempt.started_at_ms;
            meta.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&path)?;
            record
        };
        tx.commit().at(&path)?;
        self.progress = progress;
        self.logged = logged;
        self.attempt = number;
        self.previous = Some(previous);
        Ok(record)
    }

    /// Closes the last attempt if it is still open though no process writes the run (the
    /// caller holds its lock): it ended as `died_as`, at the last stored step as it stands
    /// before anything else in `tx` changes it.
    fn close_dead_attempt(&self, tx: &WriteTransaction, died_as: RunState) -> Result<()> {
        let path = &self.path;
        let mut attempts = tx.open_table(ATTEMPTS).at(path)?;
        let last = attempts.get(self.attempt).at(path)?.map(|last| AttemptRecord::decode(last.value()));
        if let Some(previous) = last {
            let mut previous = previous.at(path)?;
            if previous.outcome.is_none() {
                previous.ended_at_ms = Some(self.progress.updated_at_ms);
                previous.last_step = self.progress.last_step;
                previous.outcome = Some(died_as.into());
                attempts.insert(self.attempt, previous.encode().as_slice()).at(path)?;
            }
        }
        Ok(())
    }

    /// Changes the run record (tags, notes) in one durable transaction, and returns it as
    /// stored.
    pub(crate) fn edit_record(&mut self, edit: impl FnOnce(&mut RunRecord)) -> Result<RunRecord> {
        let path = self.path.clone();
        guard::catch(&path, || {
            let tx = begin(&self.db, &path)?;
            let record = {
                let mut meta = tx.open_table(META).at(&path)?;
                let mut record =
                    RunRecord::decode(meta.get(KEY_RUN).at(&path)?.ok_or(Corrupt("no run record")).at(&path)?.value())
                        .at(&path)?;
                edit(&mut record);
                meta.insert(KEY_RUN, record.encode().as_slice()).at(&path)?;
                record
            };
            tx.commit().at(&path)?;
            Ok(record)
        })
    }

    /// Merges `config` into the stored run record's config, in one durable transaction.
    pub(crate) fn merge_config(&mut self, config: serde_json::Map<String, serde_json::Value>) -> Result<()> {
        self.edit_record(|record| crate::store::merge_objects(&mut record.config, config)).map(|_| ())
    }

    /// Gives the file's free space back to the file system, at the end of an attempt: redb grows
    /// a file by doubling, so a run's file can be twice its data until compacted.
    ///
    /// Compaction is skipped while another process reads the run, and its errors are ignored:
    /// it is redb's own two-phase operation on data that is already durable, and the next
    /// attempt's finish tries again. It is also skipped for a long file the attempt barely
    /// grew (see [`worth_compacting`]): its cost grows with the history, its gain does not.
    pub(crate) fn compact(mut self) {
        let path = self.path.clone();
        let len = std::fs::metadata(&path).map_or(u64::MAX, |meta| meta.len());
        if !worth_compacting(self.opened_len, len) {
            return;
        }
        let _ = guard::catch(&path, || {
            let _ = self.db.compact();
            Ok(())
        });
    }

    /// Sets the size of the chunks written from now on: small when every row is committed alone.
    pub(crate) fn set_chunk_size(&mut self, size: ChunkSize) {
        self.size = size;
    }

    /// The size of the chunks a commit of `rows` writes: large for a batch (a fold of a durable
    /// run's journal writes a second of rows), whatever the writer's size for single rows.
    fn size_for(&self, rows: &RowBatch) -> ChunkSize {
        if rows.rows() >= LARGE_COMMIT_ROWS { ChunkSize::Large } else { self.size }
    }

    /// What it takes to open this writer again: after a failed commit redb refuses every later
    /// write on the same handle, so the handle is dropped and the database opened anew.
    pub(crate) fn reopen_plan(&self) -> Reopen {
        Reopen { path: self.path.clone(), previous: self.previous, size: self.size, names_stored: self.names_stored }
    }

    /// How the run stood before this attempt began; `None` for a run this attempt created.
    pub(crate) fn previous(&self) -> Option<Ending> {
        self.previous
    }

    /// Stores `rows` (which start at or after the last stored step) with `extras`, in one
    /// durable transaction. On error nothing is stored and `self` is unchanged.
    pub(crate) fn commit(&mut self, rows: &RowBatch, extras: &Extras<'_>) -> Result<()> {
        let path = self.path.clone();
        guard::catch(&path, || self.commit_unguarded(rows, extras))
    }

    fn commit_unguarded(&mut self, rows: &RowBatch, extras: &Extras<'_>) -> Result<()> {
        let path = self.path.clone();
        let mut progress = self.progress.clone();
        let mut logged = self.logged.clone();
        let tx = begin(&self.db, &path)?;
        {
            if !extras.new_names.is_empty() {
                let mut metrics = tx.open_table(METRICS).at(&path)?;
                for (offset, name) in extras.new_names.iter().enumerate() {
                    let id = self.names_stored + u32::try_from(offset).unwrap_or(u32::MAX);
                    metrics.insert(id, name.as_str()).at(&path)?;
                }
                logged.resize(logged.len() + extras.new_names.len(), None);
            }
            if !rows.is_empty() {
                self.store_rows(&tx, rows, &mut progress)?;
                for (&metric, &value) in rows.metrics.iter().zip(&rows.values) {
                    if let Some(slot) = logged.get_mut(metric as usize) {
                        *slot = Some(value);
                    }
                }
                if !progress.pinned.is_empty() {
                    progress.pinned.retain(|(metric, _)| !rows.metrics.contains(metric));
                }
            }
            if !extras.samples.is_empty() {
                chunks::append_samples(&tx, &path, extras.samples, self.size_for(rows), &mut self.scratch)?;
            }
            for &(metric, value) in extras.summary_sets {
                progress.pinned.retain(|(pinned, _)| *pinned != metric);
                progress.pinned.push((metric, value));
            }
            progress.summary = summary_of(&logged);
            progress.updated_at_ms = sys::now_ms();
            // A mark that does not close the attempt (preempting, from a signal thread that took
            // the slot after the final commit) never changes a state the attempt ended with.
            let ended = !RunState::try_from(progress.state).at(&path)?.is_live();
            if let Some(ending) = extras.state.filter(|_| extras.close_attempt || !ended) {
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
            if let Some(checkpoint) = extras.checkpoint {
                if progress.last_step.is_none_or(|last| checkpoint.step > last) {
                    let run = path.parent().and_then(Path::file_name).unwrap_or_default();
                    return Err(Error::BeyondHistory {
                        id: run.to_string_lossy().into_owned(),
                        requested: checkpoint.step,
                        last: progress.last_step,
                    });
                }
                let mut checkpoints = tx.open_table(CHECKPOINTS).at(&path)?;
                let number = match checkpoints.last().at(&path)? {
                    Some((key, _)) => key.value().checked_add(1).ok_or(Corrupt("too many checkpoints")).at(&path)?,
                    None => 0,
                };
                checkpoints.insert(number, checkpoint.encode().as_slice()).at(&path)?;
            }
            let mut meta = tx.open_table(META).at(&path)?;
            meta.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&path)?;
            match extras.journal {
                JournalUpdate::Keep => {}
                JournalUpdate::Set(mark) => {
                    meta.insert(KEY_JOURNAL, mark.encode().as_slice()).at(&path)?;
                }
                JournalUpdate::Clear => {
                    meta.remove(KEY_JOURNAL).at(&path)?;
                }
            }
        }
        tx.commit().at(&path)?;
        self.progress = progress;
        self.logged = logged;
        self.names_stored += u32::try_from(extras.new_names.len()).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Appends the rows' steps and times to the row chunks and each metric's points to its
    /// point chunks (see [`chunks`]), and advances the step counter.
    fn store_rows(&mut self, tx: &WriteTransaction, rows: &RowBatch, progress: &mut Progress) -> Result<()> {
        let path = &self.path;
        let size = self.size_for(rows);
        let added = chunks::append_rows(tx, path, rows, size, &mut self.scratch)?;
        chunks::append_points(tx, path, rows, size, &mut self.scratch)?;
        let last_step = rows.last_step().unwrap_or_default();
        progress.rows += added;
        progress.last_step = Some(last_step);
        progress.next_step = progress.next_step.max(last_step.saturating_add(1));
        Ok(())
    }
}

impl Writer {
    /// Moves the rows after step `to` out of the live history into a new archived branch, in one
    /// transaction: the chunks after `to` are moved as they are, only the chunks holding `to` are
    /// re-encoded, so the cost grows with the chunks archived and the metrics, not with the
    /// history. The step
    /// counter becomes `to + 1` and the summary is recomputed from the live history.
    ///
    /// Returns the new branch's id and record, or `None` when no row is after `to`.
    pub(crate) fn rewind(&mut self, id: &str, to: u64, by_attempt: u32) -> Result<Option<(u32, BranchRecord)>> {
        let path = self.path.clone();
        if !self.check_rewind(id, to)? {
            return Ok(None);
        }
        guard::catch(&path, || self.rewind_unguarded(Some(to), by_attempt))
    }

    /// The rewind to `target` to make: `None` when it archives nothing; the error the rewind
    /// would return.
    fn rewind_plan(&self, id: &str, target: RewindTarget) -> Result<Option<RewindTarget>> {
        match target {
            RewindTarget::Step(to) => Ok(self.check_rewind(id, to)?.then_some(target)),
            // A fork keeps its inherited rows: it is rewound to its fork step.
            RewindTarget::Everything => Ok(match &self.fork {
                Some(fork) => self.own_last_step().map(|_| RewindTarget::Step(fork.step)),
                None => self.progress.last_step.map(|_| target),
            }),
        }
    }

    /// Whether a rewind to `to` is possible: `Ok(true)` when it would archive rows, `Ok(false)`
    /// when `to` is the last step (nothing to do), else the error the rewind would return.
    pub(crate) fn check_rewind(&self, id: &str, to: u64) -> Result<bool> {
        let last = self.progress.last_step;
        let archives = match last {
            Some(last) if to < last => true,
            Some(last) if to == last => false,
            _ => return Err(Error::BeyondHistory { id: id.to_string(), requested: to, last }),
        };
        if let Some(fork) = self.fork.as_ref().filter(|fork| to < fork.step) {
            return Err(Error::RewindBeforeFork {
                id: id.to_string(),
                requested: to,
                parent: fork.run.clone(),
                fork_step: fork.step,
            });
        }
        Ok(archives)
    }

    /// Moves the rows after `to` (all rows for `None`) into a new branch; the caller checked
    /// that some row is after it.
    fn rewind_unguarded(&mut self, to: Option<u64>, by_attempt: u32) -> Result<Option<(u32, BranchRecord)>> {
        let path = self.path.clone();
        let mut progress = self.progress.clone();
        let mut logged = self.logged.clone();
        let tx = begin(&self.db, &path)?;
        if by_attempt == 0 {
            // From outside any attempt: an attempt left open by a dead process is closed first,
            // at the step it really reached, not at the one the rewind leaves.
            self.close_dead_attempt(&tx, self.stored_state()?.without_writer())?;
        }
        let branch = self.rewind_in(&tx, to, by_attempt, &mut progress, &mut logged)?;
        tx.open_table(META).at(&path)?.insert(KEY_PROGRESS, progress.encode().as_slice()).at(&path)?;
        tx.commit().at(&path)?;
        self.progress = progress;
        self.logged = logged;
        Ok(Some(branch))
    }

    /// The rewind itself, in `tx` (checked by the caller to archive rows): the rows after `to`
    /// (every row of the run's own for `None`) move to a new branch, with the checkpoints they
    /// cover; updates `progress` and `logged`, which the caller stores. The attempt
    /// `by_attempt`, if it is open, now continues from the rewound step, so its first step
    /// moves back there if it was later.
    fn rewind_in(
        &mut self,
        tx: &WriteTransaction,
        to: Option<u64>,
        by_attempt: u32,
        progress: &mut Progress,
        logged: &mut [Option<f64>],
    ) -> Result<(u32, BranchRecord)> {
        let path = self.path.clone();
        let last = progress.last_step;
        let mut branches = tx.open_table(BRANCHES).at(&path)?;
        let branch_id = match branches.last().at(&path)? {
            Some((key, _)) => key.value().checked_add(1).ok_or(Corrupt("too many branches")).at(&path)?,
            None => 0,
        };
        let archived = chunks::archive_after(tx, &path, branch_id, to, self.names_stored, &mut self.scratch)?;
        let moved = archived.rows;
        let last_archived = last.or(to).unwrap_or_default();
        let first_archived = archived.first_step.unwrap_or(last_archived);
        progress.last_step = match tx.open_table(ROWS).at(&path)?.last().at(&path)? {
            Some((_, bytes)) => Some(row_chunk::range(bytes.value()).at(&path)?.last_step),
            None => self.fork.as_ref().and_then(|fork| fork.inherited_last),
        };
        let next_step = to.map_or(0, |to| to.saturating_add(1));
        progress.next_step = next_step;
        progress.rows = progress.rows.saturating_sub(moved);
        progress.updated_at_ms = sys::now_ms();
        self.recompute_summary(tx, logged)?;
        progress.summary = summary_of(logged);

        let mut attempts = tx.open_table(ATTEMPTS).at(&path)?;
        let mut overlapping = Vec::new();
        let mut current = None;
        for entry in attempts.iter().at(&path)? {
            let (number, bytes) = entry.at(&path)?;
            let attempt = AttemptRecord::decode(bytes.value()).at(&path)?;
            // An open attempt has logged up to the last stored step, if it logged anything.
            let attempt_last = if attempt.outcome.is_none() { last } else { attempt.last_step };
            if attempt_last.is_some_and(|end| attempt.first_step <= last_archived && end >= first_archived) {
                overlapping.push(number.value());
            }
            if number.value() == by_attempt && attempt.outcome.is_none() && attempt.first_step > next_step {
                current = Some(attempt);
            }
        }
        if let Some(mut attempt) = current {
            attempt.first_step = next_step;
            attempts.insert(by_attempt, attempt.encode().as_slice()).at(&path)?;
        }
        let archived_checkpoints = archive_checkpoints(tx, &path, branch_id, to)?;
        let record = BranchRecord {
            created_at_ms: progress.updated_at_ms,
            rewound_to: to.unwrap_or_default(),
            first_step: first_archived,
            last_step: last_archived,
            rows: moved,
            by_attempt,
            attempts: overlapping,
            checkpoints: archived_checkpoints,
            restarted: to.is_none(),
        };
        branches.insert(branch_id, record.encode().as_slice()).at(&path)?;
        Ok((branch_id, record))
    }

    /// Sets each metric's summary to its last value in the live history (after a rewind moved
    /// the later points out): the last live chunk summary of each metric, no values decoded; a
    /// fork falls back to the values it inherited.
    fn recompute_summary(&self, tx: &WriteTransaction, logged: &mut [Option<f64>]) -> Result<()> {
        let path = &self.path;
        let summaries = tx.open_table(SUMMARIES).at(path)?;
        let inherited = |metric: u32| {
            let fork = self.fork.as_ref()?;
            fork.inherited_summary.iter().find(|(id, _)| *id == metric).map(|&(_, value)| value)
        };
        for (metric, slot) in (0u32..).zip(logged.iter_mut()) {
            if slot.is_none() {
                continue;
            }
            let last = summaries.range((metric, 0)..=(metric, u64::MAX)).at(path)?.next_back().transpose().at(path)?;
            *slot = match last {
                Some((_, bytes)) => Some(ChunkSummary::decode(bytes.value()).at(path)?.last),
                None => inherited(metric),
            };
        }
        Ok(())
    }
}

/// Marks the live checkpoints after step `to` as belonging to branch `branch` (a rewind below
/// them archived the state they hold); returns their numbers.
fn archive_checkpoints(tx: &WriteTransaction, path: &Path, branch: u32, to: Option<u64>) -> Result<Vec<u32>> {
    let mut table = tx.open_table(CHECKPOINTS).at(path)?;
    let mut changed = Vec::new();
    for entry in table.iter().at(path)? {
        let (number, bytes) = entry.at(path)?;
        let record = CheckpointRecord::decode(bytes.value()).at(path)?;
        if record.branch.is_none() && to.is_none_or(|to| record.step > to) {
            changed.push((number.value(), record));
        }
    }
    for (number, record) in &mut changed {
        record.branch = Some(branch);
        table.insert(*number, record.encode().as_slice()).at(path)?;
    }
    Ok(changed.into_iter().map(|(number, _)| number).collect())
}

/// Reads the checkpoint records of a run database in one transaction.
pub(crate) fn read_checkpoints(tx: &redb::ReadTransaction, path: &Path) -> Result<Vec<(u32, CheckpointRecord)>> {
    let table = tx.open_table(CHECKPOINTS).at(path)?;
    let mut out = Vec::new();
    for entry in table.iter().at(path)? {
        let (number, bytes) = entry.at(path)?;
        out.push((number.value(), CheckpointRecord::decode(bytes.value()).at(path)?));
    }
    Ok(out)
}

fn summary_of(logged: &[Option<f64>]) -> Vec<(u32, f64)> {
    (0u32..).zip(logged).filter_map(|(id, value)| Some((id, (*value)?))).collect()
}

/// Opens a run database for writing (`create`: a new one). Unit tests can route this through a
/// storage backend that injects I/O faults and power cuts (`crate::fault_tests`).
fn open_database(path: &Path, create: bool) -> Result<Database> {
    #[cfg(test)]
    if let Some(backend) = crate::fault_tests::backend_for(path)? {
        return builder().create_with_backend(backend).at(path);
    }
    if create { builder().create(path) } else { builder().open(path) }.at(path)
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
    if found != RUN_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat { path: path.to_path_buf(), found, supported: RUN_FORMAT_VERSION });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_compacts_new_and_short_files_and_long_ones_it_grew_by_an_eighth() {
        const MIB: u64 = 1 << 20;
        // A new run (opened empty), however long it ends.
        assert!(worth_compacting(0, 3 * MIB));
        assert!(worth_compacting(0, 300 * MIB));
        // A short file, even barely grown.
        assert!(worth_compacting(3 * MIB, 3 * MIB + (100 << 10)));
        // A long file: only when it grew by an eighth.
        assert!(!worth_compacting(300 * MIB, 300 * MIB + (64 << 10)));
        assert!(!worth_compacting(300 * MIB, 330 * MIB));
        assert!(worth_compacting(300 * MIB, 340 * MIB));
        // A length that cannot be read counts as worth it.
        assert!(worth_compacting(300 * MIB, u64::MAX));
    }

    fn entry(step: u64, first_name: u32, names: &[&str], sets: &[(u32, f64)], points: &[(u32, f64)]) -> Entry {
        Entry {
            step,
            time_ms: 1000 + step,
            first_name,
            names: names.iter().map(|&name| name.into()).collect(),
            sets: sets.to_vec(),
            points: points.to_vec(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn a_replay_applies_records_as_their_log_calls_did_and_stops_at_one_that_cannot_follow() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::Store::open(dir.path()).expect("store");
        let mut run = store.init(crate::RunOptions::new().id("r")).expect("init");
        run.log_at(5, [("loss", 1.0)]).expect("log");
        run.finish(0).expect("finish");
        let writer = Writer::open(&store.database_path("r")).expect("open");
        // Stored: name 0 "loss", last step 5.
        let entries = [
            // A name the database holds already (a fold took it), then a new one.
            entry(5, 0, &["loss", "acc"], &[(1, 0.5)], &[(0, 2.0)]),
            // A value set and then logged: the logged value wins.
            entry(6, 2, &[], &[(0, 9.0)], &[(0, 3.0), (1, 0.7)]),
            entry(6, 2, &[], &[(0, 7.0)], &[(1, 0.8)]),
        ];
        let replay = writer.replayable(&entries);
        assert_eq!(replay.names, ["acc"]);
        assert_eq!(replay.rows.steps, [5, 6], "step 5 merges into the stored row, the second 6 into the first");
        assert_eq!(replay.sets, [(0, 7.0)], "values set and then logged are replaced; the last one stays");
        for stop in [
            entry(4, 2, &[], &[], &[(0, 1.0)]),    // a step that goes back
            entry(7, 3, &["x"], &[], &[(0, 1.0)]), // a gap in the names
            entry(7, 2, &[], &[], &[(5, 1.0)]),    // a metric no name was given for
            entry(7, 2, &[], &[(5, 1.0)], &[]),    // a value set for one
        ] {
            let mut with = entries.to_vec();
            with.push(stop.clone());
            with.push(entry(8, 2, &[], &[], &[(0, 4.0)]));
            let replay = writer.replayable(&with);
            assert_eq!(replay.rows.steps, [5, 6], "stops at {stop:?}");
        }
    }
}
