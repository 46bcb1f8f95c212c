//! What can make a command fail, and the exit code each failure maps to.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (also: stdout closed early, as by `runstore history X \| head`) |
//! | 1 | any other error: I/O, a damaged or newer store, storage errors |
//! | 2 | bad input: usage, invalid run id or metric name, bad `KEY=VALUE`, bad environment, step errors |
//! | 3 | the run does not exist (or the queue, or the queue item) |
//! | 4 | the run already exists (`log --resume never`), or the queue item does |
//! | 5 | the run is locked by another process, or the queue item is claimed by a live agent |
//! | 6 | the store's filesystem cannot keep one writer per run (`Error::LocksUnsupported`) |

use std::fmt;
use std::io;
use std::path::Path;

use runstore::Error;

/// Any error not listed below.
pub const OTHER: u8 = 1;
/// Bad input: usage, invalid id, invalid `KEY=VALUE`, bad environment, step errors.
pub const BAD_INPUT: u8 = 2;
/// The run does not exist.
pub const NOT_FOUND: u8 = 3;
/// The run exists and the policy forbids touching it.
pub const EXISTS: u8 = 4;
/// Another process writes the run.
pub const LOCKED: u8 = 5;
/// Locks on the store's filesystem cannot keep one writer per run.
pub const LOCKS_UNSUPPORTED: u8 = 6;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// An error of the library.
    Store(Error),
    /// Bad input found by the command line itself; the message says what to do.
    Input(String),
    /// Writing the output failed; `target` is `stdout` or a file.
    Output { target: String, source: io::Error },
    /// A remote server (MLflow) could not be reached or refused a request; the message names
    /// it, the HTTP status and the server's own message.
    Remote(String),
    /// An error of the library, told in the words of the command that met it (its exit code
    /// is the library error's).
    Explained { code: u8, message: String },
    /// `runstore agent` stopped on SIGINT or SIGTERM after requeueing its item: exits
    /// 128 + the signal number, as a shell reports a process the signal ended.
    Interrupted { signal: i32, message: String },
}

impl Failure {
    /// A bad-input failure with this message.
    pub fn input(message: impl Into<String>) -> Failure {
        Failure::Input(message.into())
    }

    /// A library error that `explain` words for this command (`None`: the library's words).
    pub fn explain(self, explain: impl FnOnce(&Error) -> Option<String>) -> Failure {
        match self {
            Failure::Store(error) => match explain(&error) {
                Some(message) => Failure::Explained { code: store_code(&error), message },
                None => Failure::Store(error),
            },
            other => other,
        }
    }

    /// The process exit code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Failure::Store(error) => store_code(error),
            Failure::Input(_) => BAD_INPUT,
            Failure::Explained { code, .. } => *code,
            Failure::Output { .. } | Failure::Remote(_) => OTHER,
            Failure::Interrupted { signal, .. } => u8::try_from(128 + signal).unwrap_or(OTHER),
        }
    }

    /// Whether this is stdout being closed by its reader: not an error for a command line.
    pub fn is_closed_stdout(&self) -> bool {
        matches!(self, Failure::Output { target, source } if target == "stdout" && source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// Attributes an output error to the file at `path` rather than stdout.
    pub fn writing_to(self, path: &Path) -> Failure {
        match self {
            Failure::Output { source, .. } => Failure::Output { target: path.display().to_string(), source },
            other => other,
        }
    }
}

fn store_code(error: &Error) -> u8 {
    match error {
        Error::InvalidRunId { .. }
        | Error::InvalidMetricName { .. }
        | Error::InvalidConfig { .. }
        | Error::InvalidEnvironment { .. }
        | Error::RunIdRequired
        | Error::StepRegression { .. }
        | Error::StepOutOfRange { .. }
        | Error::BeyondHistory { .. }
        | Error::RewindBeforeFork { .. }
        | Error::CheckpointBeforeFork { .. }
        | Error::ForkedProcess { .. }
        | Error::InvalidQueueName { .. }
        | Error::InvalidTag { .. }
        | Error::RunHasForks { .. }
        | Error::InvalidSweepSpace { .. } => BAD_INPUT,
        Error::RunNotFound { .. }
        | Error::BranchNotFound { .. }
        | Error::QueueNotFound { .. }
        | Error::QueueItemNotFound { .. } => NOT_FOUND,
        Error::RunExists { .. } | Error::QueueItemExists { .. } => EXISTS,
        Error::RunLocked { .. } | Error::QueueItemClaimed { .. } => LOCKED,
        Error::LocksUnsupported { .. } => LOCKS_UNSUPPORTED,
        _ => OTHER,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Store(error) => write!(f, "{error}"),
            Failure::Input(message)
            | Failure::Remote(message)
            | Failure::Explained { message, .. }
            | Failure::Interrupted { message, .. } => f.write_str(message),
            Failure::Output { target, source } => write!(f, "cannot write to {target}: {source}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Store(error)
    }
}

impl From<io::Error> for Failure {
    /// An I/O error while writing stdout; use [`Failure::writing_to`] for files.
    fn from(source: io::Error) -> Failure {
        Failure::Output { target: "stdout".into(), source }
    }
}
