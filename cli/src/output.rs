//! Formatting shared by the commands: times, numbers for people and for scripts, text fitting.

use std::fmt::Write as _;
use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::exit::Failure;

/// The terminal width that human output is laid out for.
pub const COLUMNS: usize = 80;

/// Buffered, locked stdout. Write with `writeln!` and `?`: `println!` panics on a closed pipe.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Writes `runstore: <message>` to stderr; a closed stderr is ignored (there is nobody to tell).
pub fn warn(message: &str) {
    let _ = writeln!(io::stderr(), "runstore: {message}");
}

/// Writes one line to stdout and flushes it.
pub fn stdout_line(text: &str) -> Result<(), Failure> {
    let mut out = stdout();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Writes the file at `path` with `write`: under a temporary name beside it, renamed over
/// `path` once complete and synced, so that a failure leaves no half-written file.
pub fn write_file<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<tempfile::NamedTempFile>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let failed = |source: io::Error| Failure::Output { target: path.display().to_string(), source };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".runstore-");
    #[cfg(unix)]
    {
        // As any new file (the umask applies), not the owner-only mode of temporary files.
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let file = builder.tempfile_in(parent).map_err(failed)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let value = write(&mut out).map_err(|failure| failure.writing_to(path))?;
    let file = out.into_inner().map_err(|error| failed(error.into_error()))?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|error| failed(error.error))?;
    Ok(value)
}

/// `2026-11-27T01:03:07Z`: RFC 3339, UTC, second precision (the library's formatter).
pub use runstore::format_rfc3339 as time;

/// A duration between two times for people: `45s`, `3m20s`, `1h02m`, `2d03h`.
pub fn duration(from: SystemTime, to: SystemTime) -> String {
    let secs = to.duration_since(from).map_or(0, |d| d.as_secs());
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// The text of a non-finite value, in every output format: `NaN`, `inf`, `-inf`.
pub fn non_finite(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("NaN")
    } else if value == f64::INFINITY {
        Some("inf")
    } else if value == f64::NEG_INFINITY {
        Some("-inf")
    } else {
        None
    }
}

/// Writes a value for scripts: the shortest text that reads back as the same `f64`
/// (`1`, `0.25`, `1e-7`, `-0.0`), or `NaN`, `inf`, `-inf`. Also valid JSON for a finite value.
pub fn write_exact(out: &mut impl Write, value: f64) -> io::Result<()> {
    if let Some(text) = non_finite(value) {
        return out.write_all(text.as_bytes());
    }
    if value == 0.0 && value.is_sign_negative() {
        // `-0` reads back as -0.0 too, but says less plainly that the sign is kept.
        return out.write_all(b"-0.0");
    }
    // Both forms are the shortest digits that read back; they differ in the exponent.
    let plain = format!("{value}");
    let exponent = format!("{value:e}");
    out.write_all(if exponent.len() < plain.len() { exponent } else { plain }.as_bytes())
}

/// A value as JSON: a number, or the string `"NaN"`, `"inf"` or `"-inf"` (JSON has no such numbers).
pub fn json_value(value: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => serde_json::Value::Number(number),
        None => serde_json::Value::String(non_finite(value).unwrap_or("NaN").to_string()),
    }
}

/// A value for people: at most 6 significant digits, at most 11 characters.
pub fn human(value: f64) -> String {
    if let Some(text) = non_finite(value) {
        return text.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs();
    if (1e-3..1e6).contains(&magnitude) {
        // floor(log10) is in -3..=5 here.
        #[allow(clippy::cast_possible_truncation)]
        let exponent = magnitude.log10().floor() as i32;
        let decimals = usize::try_from(5 - exponent).unwrap_or(0);
        trim_zeros(&format!("{value:.decimals$}"))
    } else {
        let text = format!("{value:.4e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) => format!("{}e{exponent}", trim_zeros(mantissa)),
            None => text,
        }
    }
}

fn trim_zeros(text: &str) -> String {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text.to_string() }
}

/// Width of `text` in terminal columns (one per character: good enough for names and ids).
pub fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `max` columns, ending with `…` when cut.
pub fn fit(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` broken into lines of at most `columns` at spaces (a longer word is cut), keeping its
/// own line breaks.
pub fn wrap(text: &str, columns: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ') {
            if !line.is_empty() && width(&line) + 1 + width(word) > columns {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(fit(&line, columns));
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// `text` padded with spaces to `columns` on the right.
pub fn pad(text: &str, columns: usize) -> String {
    let mut padded = text.to_string();
    for _ in width(text)..columns {
        padded.push(' ');
    }
    padded
}

/// A line of cells, each padded to its width, separated by two spaces, trailing spaces removed.
pub fn line(cells: &[(&str, usize)]) -> String {
    let mut text = String::new();
    for (index, (cell, columns)) in cells.iter().enumerate() {
        if index > 0 {
            text.push_str("  ");
        }
        let _ = write!(text, "{}", pad(cell, *columns));
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people_are_short() {
        for (value, text) in [
            (0.93, "0.93"),
            (1234.5678, "1234.57"),
            (3.0, "3"),
            (0.000_812, "8.12e-4"),
            (-2.5e12, "-2.5e12"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
            (0.0, "0"),
        ] {
            assert_eq!(human(value), text);
        }
    }

    #[test]
    fn text_wraps_at_spaces() {
        assert_eq!(wrap("one two three\nfour", 8), ["one two", "three", "four"]);
        assert_eq!(wrap("abcdefghij", 5), ["abcd…"]);
    }

    #[test]
    fn numbers_for_scripts_are_the_shortest_text_that_reads_back() {
        for (value, expected) in
            [(1.0, "1"), (0.25, "0.25"), (1e-7, "1e-7"), (-0.0, "-0.0"), (1e300, "1e300"), (1234.5, "1234.5")]
        {
            let mut text = Vec::new();
            write_exact(&mut text, value).unwrap();
            assert_eq!(String::from_utf8(text).unwrap(), expected);
        }
    }

    #[test]
    fn numbers_for_scripts_read_back_exactly() {
        for value in [0.1, 1e-7, 1e300, -0.0, 123_456_789.123, f64::MIN_POSITIVE, 2.0 / 3.0] {
            let mut text = Vec::new();
            write_exact(&mut text, value).unwrap();
            let text = String::from_utf8(text).unwrap();
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), value.to_bits(), "{text}");
        }
    }
}
