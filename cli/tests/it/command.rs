//! The binary and what a run of it did: the helpers of the command-line tests.

use std::path::Path;
use std::process::{Command, Stdio};

/// The `RUNSTORE_*` variables the test process may carry, removed from every command it runs.
pub const VARIABLES: [&str; 6] = [
    "RUNSTORE_DIR",
    "RUNSTORE_RUN_ID",
    "RUNSTORE_RESUME",
    "RUNSTORE_PROJECT",
    "RUNSTORE_CONFIG",
    "RUNSTORE_RESUME_FROM",
];

/// The binary, with none of the test's own `RUNSTORE_*` variables.
pub fn bare() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runstore"));
    for variable in VARIABLES {
        command.env_remove(variable);
    }
    // Tables are as wide as COLUMNS says when it is set; tests choose it themselves.
    command.env_remove("COLUMNS");
    command.stdin(Stdio::null());
    command
}

/// The binary on the store at `store`.
pub fn runstore(store: &Path) -> Command {
    let mut command = bare();
    command.arg("--dir").arg(store);
    command
}

/// What a command did.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the command to its end.
pub fn run(command: &mut Command) -> Outcome {
    let output = command.output().expect("run runstore");
    Outcome {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// Runs and expects success.
pub fn ok(command: &mut Command) -> String {
    let outcome = run(command);
    assert_eq!(outcome.code, 0, "stderr: {}", outcome.stderr);
    outcome.stdout
}

/// Runs and expects exit `code` with one `runstore: ` line on stderr containing `says`.
pub fn fails(command: &mut Command, code: i32, says: &str) -> Outcome {
    let outcome = run(command);
    assert_eq!(outcome.code, code, "stdout: {} stderr: {}", outcome.stdout, outcome.stderr);
    assert_eq!(outcome.stderr.lines().count(), 1, "one line: {:?}", outcome.stderr);
    assert!(outcome.stderr.starts_with("runstore: "), "{:?}", outcome.stderr);
    assert!(outcome.stderr.contains(says), "{:?} should say {says:?}", outcome.stderr);
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    outcome
}
