//! A run's system metrics (`system/...`: CPU, memory, disk, network, GPUs), sampled by time, not
//! step: their names, and what `show` says of each (last value, peak, samples and time span).

use std::io::Write;
use std::time::SystemTime;

use runstore::RunSnapshot;

use crate::exit::Failure;
use crate::output::{self, COLUMNS};

/// The run's system metrics, in the order first recorded.
pub fn names(reader: &RunSnapshot) -> Result<Vec<String>, Failure> {
    Ok(reader.metrics()?.into_iter().filter(|name| is_system(name)).collect())
}

/// Whether `name` is a system metric's.
pub fn is_system(name: &str) -> bool {
    name.starts_with(runstore::SYSTEM_PREFIX)
}

/// What `show` says of one system metric.
pub struct Sampled {
    pub name: String,
    /// The last sample's value.
    pub last: f64,
    /// The highest value; `None` when every sample is NaN.
    pub peak: Option<f64>,
    pub samples: usize,
    pub first_time: SystemTime,
    pub last_time: SystemTime,
}

/// Each system metric of the snapshot that has samples, read from that one snapshot.
pub fn sampled(reader: &RunSnapshot) -> Result<Vec<Sampled>, Failure> {
    let mut all = Vec::new();
    for name in names(reader)? {
        let samples = reader.system(&name, ..)?;
        let (Some(&(first_time, _)), Some(&(last_time, last))) = (samples.first(), samples.last()) else {
            continue;
        };
        let peak = samples.iter().map(|&(_, value)| value).filter(|value| !value.is_nan()).reduce(f64::max);
        all.push(Sampled { name, last, peak, samples: samples.len(), first_time, last_time });
    }
    Ok(all)
}

/// `{name: {last, peak, samples, first_time, last_time}}`.
pub fn json(sampled: &[Sampled]) -> serde_json::Value {
    sampled
        .iter()
        .map(|metric| {
            let value = serde_json::json!({
                "last": output::json_value(metric.last),
                "peak": metric.peak.map_or(serde_json::Value::Null, output::json_value),
                "samples": metric.samples,
                "first_time": output::time(metric.first_time),
                "last_time": output::time(metric.last_time),
            });
            (metric.name.clone(), value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The `system` section of `show`: one line per metric, in 80 columns, aligned as the summary,
/// then the sampler's notes (why some series were not recorded: no GPU, say).
pub fn text(out: &mut dyn Write, sampled: &[Sampled], notes: &[String]) -> std::io::Result<()> {
    if sampled.is_empty() {
        if !notes.is_empty() {
            writeln!(out)?;
            writeln!(out, "system")?;
        }
        return write_notes(out, notes);
    }
    // GPU metrics' names are long: the name column is wider than the summary's.
    let name_width = sampled.iter().map(|metric| output::width(&metric.name)).max().unwrap_or(0).clamp(6, 32);
    let value_width = 9;
    let right = |text: &str| format!("{text:>value_width$}");
    let span_width = COLUMNS.saturating_sub(name_width + 2 + 3 * 2 + 2 * value_width);
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        output::line(&[
            ("system", name_width + 2),
            (&right("last"), value_width),
            (&right("peak"), value_width),
            ("samples", 0)
        ])
    )?;
    for metric in sampled {
        let name = format!("  {}", crate::table::fit_middle(&metric.name, name_width));
        let last = right(&output::human(metric.last));
        let peak = right(&metric.peak.map_or_else(|| "-".to_string(), output::human));
        let span = match metric.samples {
            1 => "1 sample".to_string(),
            n => format!("{n} over {}", output::duration(metric.first_time, metric.last_time)),
        };
        let span = output::fit(&span, span_width);
        writeln!(
            out,
            "{}",
            output::line(&[(&name, name_width + 2), (&last, value_width), (&peak, value_width), (&span, 0)])
        )?;
    }
    write_notes(out, notes)
}

/// Each note, indented as the section's lines and wrapped to 80 columns.
fn write_notes(out: &mut dyn Write, notes: &[String]) -> std::io::Result<()> {
    for note in notes {
        for line in output::wrap(note, COLUMNS - 2) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}
