//! `runstore show`: everything about one run.

use std::fmt::Write as _;
use std::io::Write;

use runstore::{Attempt, Branch, LockHolder, RunInfo, RunSnapshot, Store};

use crate::exit::Failure;
use crate::output::{self, COLUMNS};
use crate::spark;

/// Show a run: state, config, summary with sparklines, attempts.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  runstore show resnet-7
  runstore show resnet-7 --json | jq .summary")]
pub struct Args {
    /// The run id.
    id: String,
    /// One JSON object instead of text (fields: see the README).
    #[arg(long)]
    json: bool,
}

/// Width of a sparkline, in characters.
const SPARK: usize = 24;

/// Labels of the key-value block, padded to this width.
const LABEL: usize = 10;

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    // One snapshot: the state, attempts, names and curves must agree with each other.
    let reader = store.open_run(&args.id)?.snapshot()?;
    let info = reader.info()?;
    let attempts = reader.attempts()?;
    let branches = reader.branches()?;
    // System metrics have samples by time, not a curve over steps.
    let metrics: Vec<String> =
        reader.metrics()?.into_iter().filter(|name| !name.starts_with(runstore::SYSTEM_PREFIX)).collect();
    let checkpoint = reader.latest_checkpoint()?;
    let holder = if info.state.is_live() { reader.holder() } else { None };
    let mut out = output::stdout();
    if args.json {
        let mut value = json(&info, &attempts, &metrics, holder.as_ref());
        value["branches"] = branches.iter().map(crate::rewind::branch_json).collect();
        value["latest_checkpoint"] =
            checkpoint.latest.as_ref().map_or(serde_json::Value::Null, crate::checkpoint::checkpoint_json);
        value["forked_from"] = info
            .forked_from
            .as_ref()
            .map_or(serde_json::Value::Null, |(run, step)| serde_json::json!({"run": run, "step": step}));
        serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        let curves = curves(&reader, &info, &metrics)?;
        text(&mut out, &info, &attempts, holder.as_ref(), &curves, &checkpoint)?;
        branches_table(&mut out, &branches)?;
    }
    out.flush()?;
    Ok(())
}

fn json(info: &RunInfo, attempts: &[Attempt], metrics: &[String], holder: Option<&LockHolder>) -> serde_json::Value {
    let summary: serde_json::Map<String, serde_json::Value> =
        info.summary.iter().map(|(name, &value)| (name.clone(), output::json_value(value))).collect();
    let attempts: Vec<_> = attempts
        .iter()
        .map(|attempt| {
            serde_json::json!({
                "number": attempt.number,
                "started_at": output::time(attempt.started_at),
                "ended_at": attempt.ended_at.map(output::time),
                "host": attempt.host,
                "pid": attempt.pid,
                "first_step": attempt.first_step,
                "last_step": attempt.last_step,
                "outcome": attempt.outcome.map(runstore::RunState::as_str),
                "exit_code": attempt.exit_code,
            })
        })
        .collect();
    serde_json::json!({
        "id": info.id,
        "project": info.project,
        "name": info.name,
        "tags": info.tags,
        "notes": info.notes,
        "state": info.state.as_str(),
        "exit_code": info.exit_code,
        "next_step": info.next_step,
        "last_step": info.last_step,
        "rows": info.rows,
        "created_at": output::time(info.created_at),
        "updated_at": output::time(info.updated_at),
        "holder": holder.map(|holder| serde_json::json!({
            "pid": holder.pid,
            "host": holder.host,
            "since": output::time(holder.since),
        })),
        "config": info.config,
        "summary": summary,
        "metrics": metrics,
        "attempts": attempts,
    })
}

/// Each metric with its summary value and sparkline.
fn curves(reader: &RunSnapshot, info: &RunInfo, metrics: &[String]) -> Result<Vec<(String, String, String)>, Failure> {
    let first = reader.history(..)?.next_row()?.map(|row| row.step());
    let mut curves = Vec::new();
    for name in metrics {
        let value = info.summary.get(name).map_or_else(|| "-".to_string(), |&value| output::human(value));
        let line = match (first, info.last_step) {
            (Some(first), Some(last)) if first <= last => spark::sparkline(reader, name, first, last, SPARK)?,
            _ => String::new(),
        };
        curves.push((name.clone(), value, line));
    }
    Ok(curves)
}

fn text(
    out: &mut impl Write,
    info: &RunInfo,
    attempts: &[Attempt],
    holder: Option<&LockHolder>,
    curves: &[(String, String, String)],
    checkpoint: &runstore::CheckpointChoice,
) -> std::io::Result<()> {
    let field = |out: &mut dyn Write, label: &str, value: &str| -> std::io::Result<()> {
        for (index, line) in output::wrap(value, COLUMNS - LABEL - 2).iter().enumerate() {
            let label = if index == 0 { label } else { "" };
            writeln!(out, "{}{line}", output::pad(label, LABEL + 2))?;
        }
        Ok(())
    };
    field(out, "id", &info.id)?;
    if let Some(project) = &info.project {
        field(out, "project", project)?;
    }
    if let Some(name) = &info.name {
        field(out, "name", name)?;
    }
    let mut state = info.state.as_str().to_string();
    if let Some(code) = info.exit_code.filter(|_| !info.state.is_live()) {
        let _ = write!(state, " (exit code {code})");
    }
    if let Some(holder) = holder {
        let _ = write!(state, ": {holder}");
    }
    field(out, "state", &state)?;
    let last = info.last_step.map_or_else(|| "none".to_string(), |step| step.to_string());
    field(out, "steps", &format!("next {}, last {last}, {} rows", info.next_step, info.rows))?;
    if let Some((parent, step)) = &info.forked_from {
        field(out, "forked", &format!("from run {parent} at step {step}"))?;
    }
    if let Some(latest) = &checkpoint.latest {
        let mut text = format!("step {}: {}", latest.step, latest.path.display());
        if !checkpoint.missing.is_empty() {
            let _ = write!(text, " ({} newer missing)", checkpoint.missing.len());
        }
        field(out, "checkpoint", &text)?;
    } else if !checkpoint.missing.is_empty() {
        field(out, "checkpoint", &format!("none on disk ({} recorded, missing)", checkpoint.missing.len()))?;
    }
    field(out, "created", &output::time(info.created_at))?;
    field(out, "updated", &output::time(info.updated_at))?;
    if !info.tags.is_empty() {
        field(out, "tags", &info.tags.join(", "))?;
    }
    if let Some(notes) = &info.notes {
        field(out, "notes", notes)?;
    }
    config(out, &info.config)?;
    summary(out, curves)?;
    attempts_table(out, attempts)
}

/// The archived branches: rows that rewinds moved out of the live history.
fn branches_table(out: &mut dyn Write, branches: &[Branch]) -> std::io::Result<()> {
    if branches.is_empty() {
        return Ok(());
    }
    writeln!(out, "\narchived branches (runstore history ID --all-branches)")?;
    writeln!(out, "  {:>3}  {:<20}  {:>10}  {:<21}  {:>9}", "#", "rewound at", "rewound to", "steps", "rows")?;
    for branch in branches {
        let steps = format!("{}-{}", branch.first_step, branch.last_step);
        writeln!(
            out,
            "  {:>3}  {:<20}  {:>10}  {:<21}  {:>9}",
            branch.id,
            output::time(branch.created_at),
            branch.rewound_to,
            output::fit(&steps, 21),
            branch.rows
        )?;
    }
    Ok(())
}

fn config(out: &mut dyn Write, config: &serde_json::Map<String, serde_json::Value>) -> std::io::Result<()> {
    if config.is_empty() {
        return Ok(());
    }
    let mut flat = Vec::new();
    flatten("", config, &mut flat);
    let key_width = flat.iter().map(|(key, _)| output::width(key)).max().unwrap_or(0).min(30);
    writeln!(out, "\nconfig")?;
    for (key, value) in &flat {
        let key = output::fit(key, key_width);
        let value = output::fit(value, COLUMNS.saturating_sub(key_width + 4).max(10));
        writeln!(out, "{}", output::line(&[("", 0), (&key, key_width), (&value, 0)]))?;
    }
    Ok(())
}

/// Nested objects as dotted keys; other values as compact JSON (strings unquoted).
fn flatten(prefix: &str, object: &serde_json::Map<String, serde_json::Value>, flat: &mut Vec<(String, String)>) {
    for (key, value) in object {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            serde_json::Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, flat),
            serde_json::Value::String(text) => flat.push((key, text.replace('\n', " "))),
            other => flat.push((key, other.to_string())),
        }
    }
}

fn summary(out: &mut dyn Write, curves: &[(String, String, String)]) -> std::io::Result<()> {
    if curves.is_empty() {
        return Ok(());
    }
    let name_width = curves.iter().map(|(name, _, _)| output::width(name)).max().unwrap_or(0).clamp(6, 34);
    let value_width = 11;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        output::line(&[("summary", name_width + 2), (&format!("{:>value_width$}", "last"), value_width), ("curve", 0)])
    )?;
    for (name, value, line) in curves {
        let name = format!("  {}", output::fit(name, name_width));
        let value = format!("{value:>value_width$}");
        writeln!(out, "{}", output::line(&[(&name, name_width + 2), (&value, value_width), (line, 0)]))?;
    }
    Ok(())
}

fn attempts_table(out: &mut dyn Write, attempts: &[Attempt]) -> std::io::Result<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let header = ["#", "started", "took", "steps", "outcome", "host (pid)"];
    let rows: Vec<[String; 6]> = attempts
        .iter()
        .map(|attempt| {
            let steps = match (attempt.last_step, attempt.outcome) {
                (_, None) => format!("{}-", attempt.first_step),
                (Some(last), _) if last >= attempt.first_step => format!("{}-{last}", attempt.first_step),
                _ => "none".to_string(),
            };
            let took = match (attempt.ended_at, attempt.outcome) {
                (Some(ended), _) => output::duration(attempt.started_at, ended),
                (None, None) => output::duration(attempt.started_at, std::time::SystemTime::now()),
                (None, Some(_)) => "?".to_string(),
            };
            let mut outcome = attempt.outcome.map_or("running", runstore::RunState::as_str).to_string();
            if let Some(code) = attempt.exit_code {
                let _ = write!(outcome, " ({code})");
            }
            [
                attempt.number.to_string(),
                output::time(attempt.started_at),
                took,
                steps,
                outcome,
                format!("{} ({})", attempt.host, attempt.pid),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|cell| cell.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(output::width(cell));
        }
    }
    // The host takes what is left of 80 columns.
    let used: usize = widths[..5].iter().sum::<usize>() + 2 + 2 * 5;
    widths[5] = widths[5].min(COLUMNS.saturating_sub(used).max(10));
    writeln!(out, "\nattempts")?;
    let print = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
        let cells: Vec<String> = cells.iter().zip(&widths).map(|(cell, &width)| output::fit(cell, width)).collect();
        let number = format!("  {:>w$}", cells[0], w = widths[0]);
        let mut parts: Vec<(&str, usize)> = vec![(&number, widths[0] + 2)];
        parts.extend(cells[1..].iter().map(String::as_str).zip(widths[1..].iter().copied()));
        writeln!(out, "{}", output::line(&parts))
    };
    print(out, &header.map(String::from))?;
    for row in &rows {
        print(out, row)?;
    }
    Ok(())
}
