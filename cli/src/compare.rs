//! `runstore compare`: runs side by side — the config keys that differ, each metric's last,
//! lowest and highest value.

use std::io::Write;

use runstore::{RunInfo, Store};
use serde_json::{Map, Value};

use crate::exit::Failure;
use crate::output;
use crate::stats::{self, Stats};
use crate::table;

/// Compare runs: configs and each metric's last, min and max.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The config shows only the keys whose values differ between the runs (nested
keys joined with dots; `-` where a run lacks the key), unless --all is given.
Each metric shows its last value (the summary), and its lowest and highest
values over the live history with the step each was reached at (`0.21 @340`);
NaN is never the lowest or highest. The metrics are those of any run, in the
order the first run logged them.

--json prints one object: `runs` (id, name, state, next_step of each), `config`
(key -> run id -> value, null where a run lacks the key) and `metrics` (name ->
run id -> {last, min, min_step, max, max_step}, null where a run lacks the
metric; NaN and infinities as in jsonl).

Examples:
  runstore compare lr-0.1 lr-0.01 lr-0.001
  runstore compare a b --all -m loss -m eval/acc
  runstore compare $(runstore ls --tag sweep-1 --json | jq -r '.[].id') --json")]
pub struct Args {
    /// The runs, in the order their columns appear.
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    ids: Vec<String>,
    /// Every config key, not only those that differ.
    #[arg(long)]
    all: bool,
    /// Only this metric; repeat for more [default: all].
    #[arg(short, long = "metric", value_name = "M")]
    metrics: Vec<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// One run's side of the comparison.
struct Side {
    info: RunInfo,
    config: Vec<(String, Value)>,
    stats: Vec<(String, Stats)>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    crate::rows::check_unique(&args.metrics)?;
    for (index, id) in args.ids.iter().enumerate() {
        if args.ids[..index].contains(id) {
            return Err(Failure::input(format!("run {id:?} is given twice: give each run once")));
        }
    }
    let mut sides = Vec::new();
    for id in &args.ids {
        // One snapshot per run: its summary and its statistics of one commit.
        let reader = store.open_run(id)?.snapshot()?;
        let info = reader.info()?;
        let mut stats = stats::of_run(&reader, &info)?;
        if !args.metrics.is_empty() {
            stats.retain(|(name, _)| args.metrics.contains(name));
        }
        let mut config = Vec::new();
        flatten("", &info.config, &mut config);
        sides.push(Side { info, config, stats });
    }
    let keys = config_keys(&sides, args.all);
    let metrics = metric_names(&sides, &args.metrics);
    let mut out = output::stdout();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json(&sides, &keys, &metrics)).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        text(&mut out, &sides, &keys, &metrics)?;
    }
    out.flush()?;
    Ok(())
}

/// Nested objects as dotted keys, in the config's order.
fn flatten(prefix: &str, object: &Map<String, Value>, flat: &mut Vec<(String, Value)>) {
    for (key, value) in object {
        let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, flat),
            other => flat.push((key, other.clone())),
        }
    }
}

fn value_of<'a>(side: &'a Side, key: &str) -> Option<&'a Value> {
    side.config.iter().find(|(k, _)| k == key).map(|(_, value)| value)
}

/// Every key of any run's config, in first-seen order; only those that differ unless `all`.
fn config_keys(sides: &[Side], all: bool) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for side in sides {
        for (key, _) in &side.config {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
    }
    if !all {
        keys.retain(|key| {
            let first = value_of(&sides[0], key);
            sides.iter().any(|side| value_of(side, key) != first)
        });
    }
    keys
}

/// Every metric of any run, in the order the first run logged them, then the others'; or the
/// ones asked for, in the order given.
fn metric_names(sides: &[Side], asked: &[String]) -> Vec<String> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let mut names: Vec<String> = Vec::new();
    for side in sides {
        for (name, _) in &side.stats {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

fn stats_of<'a>(side: &'a Side, name: &str) -> Option<&'a Stats> {
    side.stats.iter().find(|(n, _)| n == name).map(|(_, stats)| stats)
}

fn json(sides: &[Side], keys: &[String], metrics: &[String]) -> Value {
    let runs: Vec<Value> = sides
        .iter()
        .map(|side| {
            serde_json::json!({
                "id": side.info.id,
                "name": side.info.name,
                "state": side.info.state.as_str(),
                "next_step": side.info.next_step,
            })
        })
        .collect();
    let mut config = Map::new();
    for key in keys {
        let values: Map<String, Value> = sides
            .iter()
            .map(|side| (side.info.id.clone(), value_of(side, key).cloned().unwrap_or(Value::Null)))
            .collect();
        config.insert(key.clone(), Value::Object(values));
    }
    let mut by_metric = Map::new();
    for name in metrics {
        let values: Map<String, Value> = sides
            .iter()
            .map(|side| {
                let value = stats_of(side, name).map_or(Value::Null, |stats| {
                    let number = |value: Option<f64>| value.map_or(Value::Null, output::json_value);
                    serde_json::json!({
                        "last": number(stats.last),
                        "min": number(stats.min.map(|(_, value)| value)),
                        "min_step": stats.min.map(|(step, _)| step),
                        "max": number(stats.max.map(|(_, value)| value)),
                        "max_step": stats.max.map(|(step, _)| step),
                    })
                });
                (side.info.id.clone(), value)
            })
            .collect();
        by_metric.insert(name.clone(), Value::Object(values));
    }
    serde_json::json!({"runs": runs, "config": config, "metrics": by_metric})
}

fn show(value: &Value) -> String {
    match value {
        Value::String(text) => text.replace('\n', " "),
        other => other.to_string(),
    }
}

fn text(out: &mut impl Write, sides: &[Side], keys: &[String], metrics: &[String]) -> std::io::Result<()> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    rows.push(("state".into(), sides.iter().map(|side| side.info.state.as_str().to_string()).collect()));
    rows.push(("next step".into(), sides.iter().map(|side| side.info.next_step.to_string()).collect()));
    if !keys.is_empty() {
        rows.push(("config".into(), Vec::new()));
        for key in keys {
            let cells = sides.iter().map(|side| value_of(side, key).map_or_else(|| "-".into(), show)).collect();
            rows.push((format!("  {key}"), cells));
        }
    }
    for name in metrics {
        rows.push((name.clone(), Vec::new()));
        let at = |point: Option<(u64, f64)>| {
            point.map_or_else(|| "-".to_string(), |(step, value)| format!("{} @{step}", output::human(value)))
        };
        let mut last = Vec::new();
        let mut min = Vec::new();
        let mut max = Vec::new();
        for side in sides {
            let stats = stats_of(side, name).copied().unwrap_or_default();
            last.push(stats.last.map_or_else(|| "-".to_string(), output::human));
            min.push(at(stats.min));
            max.push(at(stats.max));
        }
        rows.push(("  last".into(), last));
        rows.push(("  min".into(), min));
        rows.push(("  max".into(), max));
    }
    let columns = table::terminal_columns();
    let label = rows.iter().map(|(label, _)| output::width(label)).max().unwrap_or(0).clamp(10, 32);
    let share = (columns.saturating_sub(label + 2) / sides.len()).saturating_sub(2).max(8);
    let mut widths: Vec<usize> = sides.iter().map(|side| output::width(&side.info.id)).collect();
    for (_, cells) in &rows {
        for (width, cell) in widths.iter_mut().zip(cells) {
            *width = (*width).max(output::width(cell));
        }
    }
    for width in &mut widths {
        *width = (*width).min(share);
    }
    let line = |first: &str, cells: &[String]| {
        let first = table::fit_middle(first, label);
        let cut: Vec<String> = cells.iter().zip(&widths).map(|(cell, &width)| table::fit_middle(cell, width)).collect();
        let mut parts = vec![(first.as_str(), label)];
        parts.extend(cut.iter().map(String::as_str).zip(widths.iter().copied()));
        output::line(&parts)
    };
    let ids: Vec<String> = sides.iter().map(|side| side.info.id.clone()).collect();
    writeln!(out, "{}", line("", &ids))?;
    for (first, cells) in &rows {
        writeln!(out, "{}", line(first, cells))?;
    }
    Ok(())
}
