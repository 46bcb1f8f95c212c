//! `runstore ls`: one line per run, most recently updated first.

use std::io::Write;

use runstore::{Filesystem, RunInfo, RunState, Store};

use crate::exit::Failure;
use crate::output::{self, COLUMNS};

/// List runs, most recently updated first.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
States: running, finished, failed, crashed, preempting, preempted.

Examples:
  runstore ls
  runstore ls --project vision --state crashed
  runstore ls --json | jq -r '.[] | select(.state == \"failed\") | .id'")]
pub struct Args {
    /// Only runs of this project.
    #[arg(long, value_name = "P")]
    project: Option<String>,
    /// Only runs in this state (see States below).
    #[arg(long, value_name = "S", value_parser = crate::state_parser(), hide_possible_values = true)]
    state: Option<RunState>,
    /// A JSON array of run objects instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let mut runs = Vec::new();
    let mut first_error = None;
    for id in store.run_ids()? {
        match store.open_run(&id).and_then(|reader| reader.info()) {
            Ok(info) => runs.push(info),
            // A run deleted while we list it is gone, not damaged.
            Err(_) if !store.exists(&id).unwrap_or(true) => {}
            // A damaged run must not hide the others: say so, list the rest, fail at the end.
            Err(error) => {
                output::warn(&format!("skipping run {id:?}: {error}"));
                first_error.get_or_insert(error);
            }
        }
    }
    runs.retain(|info| {
        args.project.as_ref().is_none_or(|project| info.project.as_ref() == Some(project))
            && args.state.is_none_or(|state| info.state == state)
    });
    runs.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
    let mut out = output::stdout();
    if args.json {
        let list: Vec<_> = runs.iter().map(json).collect();
        serde_json::to_writer_pretty(&mut out, &list).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else if runs.is_empty() {
        writeln!(out, "no runs in {}", store.path().display())?;
    } else {
        table(&mut out, &runs)?;
    }
    out.flush()?;
    if let Some(note) = lingering_locks_note(store, &runs) {
        output::warn(&note);
    }
    first_error.map_or(Ok(()), |error| Err(error.into()))
}

/// On a shared filesystem, live runs held from other hosts may be held by nodes that died: one
/// note on stderr naming them (stdout stays what scripts read).
fn lingering_locks_note(store: &Store, runs: &[RunInfo]) -> Option<String> {
    let live: Vec<&RunInfo> = runs.iter().filter(|info| info.state.is_live()).collect();
    if live.is_empty() {
        return None;
    }
    let fs = Filesystem::detect(store.path()).ok()?;
    let mut held = Vec::new();
    let mut linger = None;
    for info in live {
        let Ok(Some(holder)) = store.open_run(&info.id).and_then(|reader| reader.holder()) else { continue };
        if let Some(lingers) = fs.lingering_lock(&holder) {
            linger = Some(lingers);
            held.push(format!("{} (host {})", info.id, holder.host));
        }
    }
    Some(format!(
        "note: held from other hosts: {}; if a node is down, its lock on this {} filesystem persists {}, and its \
         runs read running until then",
        held.join(", "),
        fs.fs_type,
        linger?
    ))
}

fn json(info: &RunInfo) -> serde_json::Value {
    serde_json::json!({
        "id": info.id,
        "project": info.project,
        "name": info.name,
        "state": info.state.as_str(),
        "next_step": info.next_step,
        "last_step": info.last_step,
        "rows": info.rows,
        "attempts": info.attempts,
        "tags": info.tags,
        "created_at": output::time(info.created_at),
        "updated_at": output::time(info.updated_at),
    })
}

fn table(out: &mut impl Write, runs: &[RunInfo]) -> std::io::Result<()> {
    let header = ["ID", "PROJECT", "NAME", "STATE", "NEXT", "UPDATED", "ATT"];
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|info| {
            [
                info.id.clone(),
                info.project.clone().unwrap_or_else(|| "-".into()),
                info.name.clone().unwrap_or_else(|| "-".into()),
                info.state.as_str().to_string(),
                info.next_step.to_string(),
                output::time(info.updated_at),
                info.attempts.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(output::width(cell));
        }
    }
    // Fit 80 columns by cutting the name, then the project; ids and times stay whole.
    let total = |widths: &[usize]| widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    for column in [2, 1] {
        let excess = total(&widths).saturating_sub(COLUMNS);
        widths[column] = widths[column].saturating_sub(excess).max(header[column].len().max(6).min(widths[column]));
    }
    writeln!(out, "{}", line(&header.map(String::from), &widths))?;
    for row in &rows {
        writeln!(out, "{}", line(row, &widths))?;
    }
    Ok(())
}

fn line(cells: &[String; 7], widths: &[usize]) -> String {
    let cut: Vec<String> = cells.iter().zip(widths).map(|(cell, &width)| output::fit(cell, width)).collect();
    let mut parts: Vec<(&str, usize)> = cut.iter().map(String::as_str).zip(widths.iter().copied()).collect();
    // Right-align the numbers.
    let next = format!("{:>w$}", cut[4], w = widths[4]);
    let attempts = format!("{:>w$}", cut[6], w = widths[6]);
    parts[4].0 = &next;
    parts[6].0 = &attempts;
    output::line(&parts)
}
