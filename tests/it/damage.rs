//! Damaged run files for the damage tests of the library and of the command line.

use std::fmt::Write as _;
use std::path::PathBuf;

use runstore::{Error, Store};

use crate::support::{TempStore, options, row, temp_store};

/// Everything a reader can get out of a run, as comparable text; or the first error.
pub fn digest(store: &Store, id: &str) -> Result<String, Error> {
    let reader = store.open_run(id)?;
    let info = reader.info()?;
    let mut text = format!(
        "{:?} {:?} {:?} {} {:?} {:?}",
        info.rows,
        info.next_step,
        info.state,
        info.attempts,
        info.summary.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>(),
        reader.metrics()?
    );
    for attempt in reader.attempts()? {
        write!(text, "{:?}{:?}{:?}", attempt.first_step, attempt.last_step, attempt.outcome).unwrap();
    }
    let mut history = reader.history(..)?;
    while let Some(row) = history.next_row()? {
        write!(text, "{}:{:?};", row.step(), row.points().iter().map(|(m, v)| (*m, v.to_bits())).collect::<Vec<_>>())
            .unwrap();
    }
    for branch in reader.branches()? {
        write!(text, "b{}:{}", branch.id, branch.rows).unwrap();
        for row in reader.branch_history(branch.id, ..)? {
            let row = row?;
            write!(
                text,
                "{}:{:?};",
                row.step(),
                row.iter().map(|(m, v)| (m.to_string(), v.to_bits())).collect::<Vec<_>>()
            )
            .unwrap();
        }
    }
    Ok(text)
}

/// A store with two healthy runs (one a fork of the other) and the victim: 3000 rows with a
/// rewind, finished.
pub fn damaged_store() -> (TempStore, PathBuf) {
    let t = temp_store();
    let mut run = t.store.init(options().id("healthy")).unwrap();
    for _ in 0..500 {
        run.log(row(run.step())).unwrap();
    }
    run.rewind(400).unwrap();
    run.log(row(401)).unwrap();
    run.finish(0).unwrap();
    t.store.fork("healthy", 300, options().id("fork")).unwrap().finish(0).unwrap();
    let mut run = t.store.init(options().id("victim")).unwrap();
    for _ in 0..3000 {
        run.log(row(run.step())).unwrap();
        if run.step().is_multiple_of(700) {
            run.flush().unwrap();
        }
    }
    run.rewind(2500).unwrap();
    for _ in 0..200 {
        run.log(row(run.step())).unwrap();
    }
    run.finish(0).unwrap();
    let path = t.path.join("runs/victim/run.redb");
    (t, path)
}

/// The ways a file is damaged: (name, damaged bytes).
pub fn damages(original: &[u8], count: usize) -> Vec<(String, Vec<u8>)> {
    let len = original.len();
    let mut out = Vec::new();
    for cut in [0, 1, 512, 4096, len / 2, len - 4096, len - 1] {
        out.push((format!("truncated to {cut} bytes"), original[..cut].to_vec()));
    }
    let mut zeroed = original.to_vec();
    zeroed.fill(0);
    out.push(("zeroed whole".into(), zeroed));
    let pages = len / 4096;
    let stride = (pages / (count / 3).max(1)).max(1);
    for page in (0..pages).step_by(stride) {
        let mut bytes = original.to_vec();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        out.push((format!("page {page} zeroed"), bytes));
    }
    let flips = count.saturating_sub(out.len()).max(1);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..flips {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Half in the first pages (headers, tree roots), half anywhere.
        let offset = if i % 2 == 0 {
            usize::try_from(state % 8192).unwrap()
        } else {
            usize::try_from(state % len as u64).unwrap()
        };
        let mut bytes = original.to_vec();
        let bit = 1u8 << ((state >> 32) % 8);
        bytes[offset] ^= if i % 5 == 0 { 0xFF } else { bit };
        out.push((format!("byte {offset} flipped"), bytes));
    }
    out
}
