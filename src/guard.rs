//! A panic of the storage engine on a damaged file becomes [`Error::Corrupt`] naming the file.
//!
//! redb trusts the pages it reads. A run file damaged outside redb — a flipped bit, a zeroed or
//! truncated page, a half-copied file — can make a plain open, a read or a write panic inside
//! redb (its docs say so for opens without `Builder::set_check_integrity_on_open`, and we have
//! seen "entered unreachable code", out-of-range slices, "invalid page type" and an `unwrap` of a
//! UTF-8 error). Checking integrity at every open would read the whole file, so resuming would
//! cost time in proportion to the history, which runstore promises it does not. Instead, every
//! entry point that hands a run file to redb runs its work through [`catch`]: nothing a file can
//! hold panics the caller's process; it gets `Error::Corrupt` and can go on with other runs.
//! `runstore check` (`Store::check`) runs redb's full integrity check when asked.
//!
//! The process's panic hook still runs when redb panics (the default hook prints the message on
//! stderr); the `runstore` command line installs a quiet hook for its main thread.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Runs `work`, which reads or writes the run file at `path`, turning a panic into
/// [`Error::Corrupt`].
///
/// Unwind safety: the callers' state stays consistent across an unwind. The writer changes its
/// progress only after a commit succeeds and rebuilds its scratch buffers before each use; a
/// redb transaction dropped by the unwind is aborted; readers hold no state between calls
/// besides redb's handle, which answers later calls with errors (or panics, caught again).
pub(crate) fn catch<T>(path: &Path, work: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(engine_failed(path, payload.as_ref())),
    }
}

/// As [`catch`] for `work` on `state`, asking `state` for the file's path only after a panic:
/// for calls made once per row, where naming the file up front would cost more than the work.
pub(crate) fn catch_in<S, T>(
    state: &mut S,
    work: impl FnOnce(&mut S) -> Result<T>,
    path: impl FnOnce(&S) -> PathBuf,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(|| work(state))) {
        Ok(result) => result,
        Err(payload) => Err(engine_failed(&path(state), payload.as_ref())),
    }
}

fn engine_failed(path: &Path, payload: &(dyn Any + Send)) -> Error {
    Error::corrupt(
        path,
        format!(
            "the storage engine failed on it ({}): see what is wrong with `runstore check`",
            panic_message(payload)
        ),
    )
}

/// The text of a panic payload, if it has one.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    // One line, and short: the file's bytes can end up in the message.
    let line: String = text.split('\n').next().unwrap_or_default().chars().take(200).collect();
    line.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_corrupt_naming_the_file() {
        let result: Result<()> = catch(Path::new("/x/run.redb"), || panic!("Invalid page type byte 0\nmore"));
        let error = result.unwrap_err();
        assert!(matches!(&error, Error::Corrupt { path, .. } if path == Path::new("/x/run.redb")), "{error:?}");
        assert_eq!(
            error.to_string(),
            "/x/run.redb is damaged: the storage engine failed on it (invalid page type byte 0): see what is wrong \
             with `runstore check`"
        );
        assert_eq!(catch(Path::new("p"), || Ok(7)).unwrap(), 7);
    }
}
