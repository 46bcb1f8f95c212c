//! `runstore show`: everything about one run.

use std::fmt::Write as _;
use std::io::Write;

use runstore::{Attempt, Branch, Filesystem, LockHolder, RunInfo, RunSnapshot, Store};

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
    let linger_note = holder.as_ref().and_then(|holder| lingering_lock_note(store, holder));
    let stats = crate::stats::of_run(&reader, &info)?;
    let system = crate::system::sampled(&reader)?;
    let mut out = output::stdout();
    if args.json {
        let mut value = json(&info, &attempts, &metrics, holder.as_ref());
        value["holder_note"] = linger_note.clone().into();
        value["extremes"] = extremes_json(&stats);
        value["system"] = crate::system::json(&system);
        value["system_notes"] = info.system_notes.clone().into();
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
        let curves = curves(&reader, &info, &metrics, &stats)?;
        text(&mut out, &info, &attempts, holder.as_ref(), &curves, &checkpoint, &system)?;
        if let Some(note) = &linger_note {
            writeln!(out)?;
            for line in output::wrap(&format!("note: {note}"), COLUMNS) {
                writeln!(out, "{line}")?;
            }
        }
        branches_table(&mut out, &branches)?;
    }
    out.flush()?;
    Ok(())
}

/// On a shared filesystem (NFS, Lustre, ...), a lock held from another host may belong to a
/// node that died: say how long such a lock persists.
pub fn lingering_lock_note(store: &Store, holder: &LockHolder) -> Option<String> {
    let fs = Filesystem::detect(store.path()).ok()?;
    let linger = fs.lingering_lock(holder)?;
    Some(format!(
        "the holder runs on host {}: if that node is down, its lock on this {} filesystem persists {linger}, and \
         the run reads running until then",
        holder.host, fs.fs_type
    ))
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

/// Each metric's lowest and highest value and their steps (NaN never counts), as JSON.
fn extremes_json(stats: &[(String, crate::stats::Stats)]) -> serde_json::Value {
    let point =
        |point: Option<(u64, f64)>| point.map_or(serde_json::Value::Null, |(_, value)| output::json_value(value));
    let step = |point: Option<(u64, f64)>| point.map(|(step, _)| step);
    stats
        .iter()
        .map(|(name, stats)| {
            let value = serde_json::json!({
                "min": point(stats.min), "min_step": step(stats.min), "max": point(stats.max), "max_step": step(stats.max),
            });
            (name.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One metric's line of the summary: name, last, lowest and highest value, sparkline.
struct Curve {
    name: String,
    last: String,
    min: String,
    max: String,
    line: String,
}

/// Each metric with its summary value, its lowest and highest values, and its sparkline.
fn curves(
    reader: &RunSnapshot,
    info: &RunInfo,
    metrics: &[String],
    stats: &[(String, crate::stats::Stats)],
) -> Result<Vec<Curve>, Failure> {
    let first = reader.history(..)?.next_row()?.map(|row| row.step());
    let mut curves = Vec::new();
    for name in metrics {
        let value = info.summary.get(name).map_or_else(|| "-".to_string(), |&value| output::human(value));
        let line = match (first, info.last_step) {
            (Some(first), Some(last)) if first <= last => spark::sparkline(reader, name, first, last, SPARK)?,
            _ => String::new(),
        };
        let extreme = |pick: fn(&crate::stats::Stats) -> Option<(u64, f64)>| {
            stats
                .iter()
                .find(|(known, _)| known == name)
                .and_then(|(_, stats)| pick(stats))
                .map_or_else(|| "-".to_string(), |(_, value)| output::human(value))
        };
        let (min, max) = (extreme(|stats| stats.min), extreme(|stats| stats.max));
        curves.push(Curve { name: name.clone(), last: value, min, max, line });
    }
    Ok(curves)
}

fn text(
    out: &mut impl Write,
    info: &RunInfo,
    attempts: &[Attempt],
    holder: Option<&LockHolder>,
    curves: &[Curve],
    checkpoint: &runstore::CheckpointChoice,
    system: &[crate::system::Sampled],
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
    field(out, "steps", &format!("next {}, last {last}, {}", info.next_step, output::count(info.rows, "row", "rows")))?;
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
    crate::system::text(out, system, &info.system_notes)?;
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

fn summary(out: &mut dyn Write, curves: &[Curve]) -> std::io::Result<()> {
    if curves.is_empty() {
        return Ok(());
    }
    // Name, three values and the sparkline in 80 columns; long names lose their middle.
    let name_width = curves.iter().map(|curve| output::width(&curve.name)).max().unwrap_or(0).clamp(6, 19);
    let value_width = 9;
    let right = |text: &str| format!("{text:>value_width$}");
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        output::line(&[
            ("summary", name_width + 2),
            (&right("last"), value_width),
            (&right("min"), value_width),
            (&right("max"), value_width),
            ("curve", 0)
        ])
    )?;
    for curve in curves {
        let name = format!("  {}", crate::table::fit_middle(&curve.name, name_width));
        let (last, min, max) = (right(&curve.last), right(&curve.min), right(&curve.max));
        writeln!(
            out,
            "{}",
            output::line(&[
                (&name, name_width + 2),
                (&last, value_width),
                (&min, value_width),
                (&max, value_width),
                (&curve.line, 0)
            ])
        )?;
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
