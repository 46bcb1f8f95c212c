//! `runstore check [ID]`: look for damage in one run or the whole store.

use std::io::Write;

use runstore::{Problem, RunCheck, Store};

use crate::exit::Failure;
use crate::output;

/// Check runs for damage; exit 1 when any is found.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads every record and every chunk of a run, and runs the storage engine's
integrity check (page checksums) on a copy of its database, so that the run's
files are never changed. A run being written is read from its last commit and
the integrity check is skipped. Without ID, checks every run of the store and
its auto pointers.

Exit codes: 0 nothing is damaged (notes may be printed), 1 damage was found,
3 the run does not exist.

Examples:
  runstore check
  runstore check resnet-7
  runstore check --json | jq '.runs[] | select(.healthy | not) | .id'")]
pub struct Args {
    /// The run to check [default: every run].
    #[arg(value_name = "ID")]
    id: Option<String>,
    /// A JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let (runs, problems, notes) = match &args.id {
        Some(id) => (vec![store.check(id)?], Vec::new(), Vec::new()),
        None => {
            let report = store.check_all()?;
            (report.runs, report.problems, report.notes)
        }
    };
    let healthy = problems.is_empty() && runs.iter().all(RunCheck::is_healthy);
    let mut out = output::stdout();
    if args.json {
        let value = serde_json::json!({
            "healthy": healthy,
            "store": store.path().display().to_string(),
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
            "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
            "notes": notes.iter().map(problem_json).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        for run in &runs {
            text(&mut out, run)?;
        }
        for problem in &problems {
            writeln!(out, "damaged: {problem}")?;
        }
        for note in &notes {
            writeln!(out, "note: {note}")?;
        }
        if args.id.is_none() {
            let damaged = runs.iter().filter(|run| !run.is_healthy()).count();
            writeln!(
                out,
                "{} run{} checked in {}: {}",
                runs.len(),
                if runs.len() == 1 { "" } else { "s" },
                store.path().display(),
                if healthy { "no damage found".to_string() } else { format!("{damaged} damaged") }
            )?;
        }
    }
    out.flush()?;
    if healthy {
        return Ok(());
    }
    // Exit 1, with one line on stderr naming the first damaged file.
    let first = problems.iter().chain(runs.iter().flat_map(|run| &run.problems)).next();
    let count = problems.len() + runs.iter().map(|run| run.problems.len()).sum::<usize>();
    Err(Failure::Store(runstore::Error::Corrupt {
        path: first.map_or_else(|| store.path().to_path_buf(), |problem| problem.path.clone()),
        detail: format!(
            "{count} problem{} found (listed above): copy the files before trying to repair them",
            if count == 1 { "" } else { "s" }
        ),
    }))
}

fn text(out: &mut impl Write, run: &RunCheck) -> std::io::Result<()> {
    let what = format!(
        "{}, {} archived in {}, {}, {}; integrity {}",
        output::count(run.rows, "row", "rows"),
        run.archived_rows,
        output::count(run.branches, "branch", "branches"),
        output::count(run.chunks, "chunk", "chunks"),
        output::count(run.attempts, "attempt", "attempts"),
        run.integrity.as_str()
    );
    if run.is_healthy() {
        writeln!(out, "ok {}: {what}", run.id)?;
    } else {
        writeln!(out, "DAMAGED {}:", run.id)?;
        for problem in &run.problems {
            writeln!(out, "  {problem}")?;
        }
    }
    for note in &run.notes {
        writeln!(out, "  note: {note}")?;
    }
    Ok(())
}

fn run_json(run: &RunCheck) -> serde_json::Value {
    serde_json::json!({
        "id": run.id,
        "dir": run.dir.display().to_string(),
        "healthy": run.is_healthy(),
        "live": run.live,
        "integrity": run.integrity.as_str(),
        "rows": run.rows,
        "archived_rows": run.archived_rows,
        "chunks": run.chunks,
        "branches": run.branches,
        "attempts": run.attempts,
        "problems": run.problems.iter().map(problem_json).collect::<Vec<_>>(),
        "notes": run.notes.iter().map(problem_json).collect::<Vec<_>>(),
    })
}

fn problem_json(problem: &Problem) -> serde_json::Value {
    serde_json::json!({"path": problem.path.display().to_string(), "detail": problem.detail})
}
