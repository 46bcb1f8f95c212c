//! Helpers shared by the test modules: stores, child processes, the standard data.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use runstore::{RunOptions, Store};

/// Set in a child process to the role it plays.
pub const CHILD: &str = "RUNSTORE_TEST_CHILD";

pub struct TempStore {
    // Kept alive for the directory.
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub store: Store,
}

pub fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("store");
    let store = Store::open(&path).expect("open store");
    TempStore { _dir: dir, path, store }
}

/// Options that ignore the test process's environment.
pub fn options() -> RunOptions {
    RunOptions::new().ignore_environment()
}

/// The standard value of `metric` (0..4) at `step`, with NaN and infinities mixed in.
pub fn value(step: u64, metric: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let i = step as f64;
    match (step % 97, metric) {
        (13, 0) => f64::NAN,
        (29, 1) => f64::INFINITY,
        (41, 2) => f64::NEG_INFINITY,
        (53, 3) => -0.0,
        _ => match metric {
            0 => 2.0 / (1.0 + 0.001 * i) + 0.01 * i.sin(),
            1 => 1.0 - (2.0 / (1.0 + 0.001 * i)) / 3.0,
            2 => 1e-3 * (0.5 + 0.5 * (i / 997.0).cos()),
            _ => 0.5 + 0.25 * (i / 13.0).sin(),
        },
    }
}

pub const METRICS: [&str; 4] = ["loss", "acc", "lr", "grad_norm"];

pub fn row(step: u64) -> [(&'static str, f64); 4] {
    [0, 1, 2, 3].map(|m| (METRICS[m], value(step, m)))
}

/// The test a child `role` runs: `children::role`, or a `module::role` of its own module.
fn test_path(role: &str) -> String {
    if role.contains("::") { role.to_string() } else { format!("children::{role}") }
}

/// A command that re-runs this test binary as the child `role` (see [`test_path`]).
pub fn child(role: &str, store: &Path) -> Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", &test_path(role), "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD, role)
        .env("RUNSTORE_DIR", store)
        .env_remove("RUNSTORE_RUN_ID")
        .env_remove("RUNSTORE_RESUME")
        .env_remove("RUNSTORE_PROJECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// Lines a child prints for its parent start with this.
pub const SAY: &str = "@@ ";

/// Reads the child's reports (lines starting with [`SAY`]), one at a time.
pub struct Reports {
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Reports {
    pub fn of(child: &mut Child) -> Reports {
        Reports { lines: BufReader::new(child.stdout.take().expect("piped stdout")).lines() }
    }

    /// The next report, or `None` when the child's output ends.
    pub fn next(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("child output");
            if let Some(report) = line.strip_prefix(SAY) {
                return Some(report.to_string());
            }
        }
        None
    }

    /// Waits for a report that starts with `prefix` and returns the rest.
    pub fn expect(&mut self, prefix: &str) -> String {
        loop {
            let report = self.next().unwrap_or_else(|| panic!("child ended before reporting {prefix:?}"));
            if let Some(rest) = report.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
    }
}

/// Every file under `dir` with its contents, to show that an operation changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return files };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.push((path.clone(), Vec::new()));
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    files.sort();
    files
}

/// Bits of a float, so that NaN compares equal to itself.
pub fn bits(value: f64) -> u64 {
    value.to_bits()
}

/// A store on tmpfs when there is one: these races are about processes, not fsync, and tmpfs
/// keeps them quick.
pub struct ShmStore {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

pub fn shm_store() -> ShmStore {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let path = dir.path().join("store");
    ShmStore { _dir: dir, path }
}

/// Run ids that must be refused: separators, dot names, control characters, too long, and
/// look-alikes of valid ids in other scripts.
pub fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "a/b",
        "../x",
        "..",
        ".",
        "",
        "/abs",
        "a\\b",
        "a\0b",
        "a\nb",
        "a\rb",
        "\t",
        " a",
        "a b",
        "ｒｕｎ",          // fullwidth
        "r\u{430}n",       // Cyrillic a
        "run\u{200b}",     // zero-width space
        "run\u{301}",      // combining accent
        "a\u{2215}b",      // division slash
        "\u{feff}run",     // byte-order mark
        "run\u{202e}gpj.", // right-to-left override
        ".hidden",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    ids.push("x".repeat(65));
    ids.push("x".repeat(10_000));
    ids
}

/// A mountinfo file for `RUNSTORE_TEST_MOUNTINFO`: this process's, plus `dir` mounted as
/// `fs_type` from `source` with `options`, so that a store there looks as if it sat on NFS.
pub fn mountinfo_with(dir: &Path, fs_type: &str, source: &str, options: &str) -> tempfile::NamedTempFile {
    let dir = std::fs::canonicalize(dir).unwrap();
    let escaped = dir.to_str().unwrap().replace(' ', "\\040");
    let text = format!(
        "{}999 27 0:99 / {escaped} rw,relatime shared:9 - {fs_type} {source} {options}\n",
        std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}
