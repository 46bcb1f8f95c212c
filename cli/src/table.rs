//! Tables for people: as wide as the terminal (never under 80 columns), long cells cut in the
//! middle, where names that share a prefix still differ (`eval/loss_a…` would hide the end).

use std::io::{self, Write};

use crate::output::{self, COLUMNS};

/// One column: its header, whether its cells align right (numbers), and whether and how far
/// it may be cut when the table is too wide (`cut_to`: the least width it is cut to).
pub struct Column {
    pub header: String,
    pub right: bool,
    pub cut_to: Option<usize>,
}

impl Column {
    /// A column that is never cut (ids, times, numbers).
    pub fn whole(header: &str) -> Column {
        Column { header: header.to_string(), right: false, cut_to: None }
    }

    /// A column of numbers, aligned right, never cut.
    pub fn number(header: &str) -> Column {
        Column { header: header.to_string(), right: true, cut_to: None }
    }

    /// A column cut down to `least` columns (at most) when the table is too wide.
    pub fn cut(header: &str, least: usize) -> Column {
        Column { header: header.to_string(), right: false, cut_to: Some(least) }
    }
}

/// The width tables fill: the terminal's (or `COLUMNS` from the environment, as shells set it)
/// when wider than 80 columns, else 80.
pub fn terminal_columns() -> usize {
    let from_env = std::env::var("COLUMNS").ok().and_then(|text| text.trim().parse::<usize>().ok());
    let from_terminal = || console::Term::stdout().size_checked().map(|(_, columns)| usize::from(columns));
    from_env.or_else(from_terminal).unwrap_or(COLUMNS).max(COLUMNS)
}

/// `text` cut to `max` columns by replacing its middle with `…`, keeping both ends.
pub fn fit_middle(text: &str, max: usize) -> String {
    let width = output::width(text);
    if width <= max {
        return text.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let keep = max - 1;
    let tail = keep / 2;
    let head = keep - tail;
    let chars: Vec<char> = text.chars().collect();
    let mut cut: String = chars[..head].iter().collect();
    cut.push('…');
    cut.extend(&chars[width - tail..]);
    cut
}

/// Writes the header and the rows, cutting the cuttable columns, rightmost first, until the
/// table fits `columns`; the last column is not padded.
pub fn write(out: &mut impl Write, header: &[Column], rows: &[Vec<String>], columns: usize) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|column| output::width(&column.header)).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(output::width(cell));
        }
    }
    let total = |widths: &[usize]| widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
    // The rightmost cuttable column first: tables put what matters most on the left.
    for (index, column) in header.iter().enumerate().rev() {
        if let Some(least) = column.cut_to {
            let excess = total(&widths).saturating_sub(columns);
            widths[index] = widths[index].saturating_sub(excess).max(least.min(widths[index]));
        }
    }
    let titles: Vec<String> = header.iter().map(|column| column.header.clone()).collect();
    let last = widths.len().saturating_sub(1);
    for row in std::iter::once(&titles).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(header)
            .zip(&widths)
            .map(|((cell, column), &width)| {
                let cell = fit_middle(cell, width);
                if column.right { format!("{cell:>width$}") } else { cell }
            })
            .collect();
        let parts: Vec<(&str, usize)> = cells
            .iter()
            .enumerate()
            .map(|(index, cell)| (cell.as_str(), if index == last { 0 } else { widths[index] }))
            .collect();
        writeln!(out, "{}", output::line(&parts))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_in_the_middle_keeping_both_ends() {
        assert_eq!(fit_middle("eval/loss_a_long_tail_1", 11), "eval/…ail_1");
        assert_eq!(fit_middle("short", 11), "short");
        assert_eq!(output::width(&fit_middle("abcdefghijklmnop", 7)), 7);
    }
}
