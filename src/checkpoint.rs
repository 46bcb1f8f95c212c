//! Checkpoints: records that the training state after a step was saved at a path, committed
//! with the rows they cover, so that a resume can restart from the newest one still on disk.
//! runstore never opens or deletes a checkpoint file: it only stats it.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::format::records::CheckpointRecord;
use crate::sys;

/// A recorded checkpoint (see [`crate::Run::checkpoint`]).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// use runstore::RunOptions;
///
/// let mut run = store.init(RunOptions::new().id("r"))?;
/// let mut saved = Vec::new();
/// for step in 0..300u32 {
///     run.log([("loss", 1.0 / (1.0 + f64::from(step)))])?;
///     if step % 100 == 99 {
///         let path = dir.path().join(format!("ckpt-{step}.pt"));
///         std::fs::write(&path, b"model state")?; // saved and in place before it is recorded
///         saved.push(run.checkpoint(&path)?);
///     }
/// }
/// run.finish(0)?;
/// std::fs::remove_file(&saved[2].absolute)?; // the user deleted the newest one
/// let choice = store.open_run("r")?.latest_checkpoint()?;
/// assert_eq!(choice.latest.as_ref().map(|c| c.step), Some(199)); // the one a resume would load
/// assert_eq!(choice.missing.iter().map(|c| c.step).collect::<Vec<_>>(), [299]);
/// let all = store.open_run("r")?.checkpoints()?;
/// assert_eq!(all.iter().map(|c| (c.step, c.exists)).collect::<Vec<_>>(), [(99, true), (199, true), (299, false)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Its sequence number in the run, from 0 in the order recorded.
    pub number: u32,
    /// The last step it covers: a resume from it continues at `step + 1`.
    pub step: u64,
    /// The path as given when it was recorded.
    pub path: PathBuf,
    /// The path made absolute when it was recorded (what is checked for existence).
    pub absolute: PathBuf,
    /// A file's length, or the total of a directory's files, when it was recorded.
    pub size: u64,
    /// When it was recorded.
    pub time: SystemTime,
    /// The attempt that recorded it.
    pub attempt: u32,
    /// The archived branch it belongs to, when a rewind below its step archived it: it is
    /// never a resume point again.
    pub branch: Option<u32>,
    /// Whether its path exists now (checked when it was read).
    pub exists: bool,
}

/// The checkpoint a resume would restart from, and the newer ones skipped because their files
/// are gone (see [`crate::RunReader::latest_checkpoint`]). See [`Checkpoint`] for an example.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CheckpointChoice {
    /// The newest live checkpoint whose path exists.
    pub latest: Option<Checkpoint>,
    /// Newer live checkpoints whose paths no longer exist, newest first.
    pub missing: Vec<Checkpoint>,
}

impl Checkpoint {
    pub(crate) fn from_record(number: u32, record: CheckpointRecord) -> Checkpoint {
        let absolute = PathBuf::from(OsString::from_vec(record.absolute));
        let exists = std::fs::symlink_metadata(&absolute).is_ok();
        Checkpoint {
            number,
            step: record.step,
            path: PathBuf::from(OsString::from_vec(record.path)),
            absolute,
            size: record.size,
            time: sys::from_ms(record.time_ms),
            attempt: record.attempt,
            branch: record.branch,
            exists,
        }
    }
}

/// The record of a checkpoint of the state after `step` saved at `path`, which must exist.
pub(crate) fn record(path: &Path, step: u64, attempt: u32) -> Result<CheckpointRecord> {
    let absolute = std::path::absolute(path).map_err(|error| Error::io(path, error))?;
    let size = size_of(&absolute)?;
    Ok(CheckpointRecord {
        step,
        path: path.as_os_str().as_bytes().to_vec(),
        absolute: absolute.as_os_str().as_bytes().to_vec(),
        size,
        time_ms: sys::now_ms(),
        attempt,
        branch: None,
    })
}

/// A file's length, or the total length of the files under a directory (links not followed).
fn size_of(path: &Path) -> Result<u64> {
    let metadata = std::fs::metadata(path).map_err(|error| Error::io(path, error))?;
    if !metadata.is_dir() {
        return Ok(metadata.len());
    }
    let mut total = 0u64;
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|error| Error::io(&dir, error))? {
            let entry = entry.map_err(|error| Error::io(&dir, error))?;
            let metadata = entry.metadata().map_err(|error| Error::io(entry.path(), error))?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total = total.saturating_add(metadata.len());
            }
        }
    }
    Ok(total)
}

/// The newest live checkpoint whose path exists (newest: highest step, then last recorded),
/// and the newer live ones whose paths are gone.
pub(crate) fn choose(checkpoints: &[Checkpoint]) -> CheckpointChoice {
    let mut live: Vec<&Checkpoint> = checkpoints.iter().filter(|c| c.branch.is_none()).collect();
    live.sort_by_key(|c| std::cmp::Reverse((c.step, c.number)));
    let mut choice = CheckpointChoice::default();
    for checkpoint in live {
        if checkpoint.exists {
            choice.latest = Some(checkpoint.clone());
            break;
        }
        choice.missing.push(checkpoint.clone());
    }
    choice
}
