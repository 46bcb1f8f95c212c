//! The README's shell blocks: each is valid shell, and the block marked `readme-test` runs,
//! line by line, against a store holding the runs it names, with the real binary on `PATH`.
//! (Its Rust blocks are the library's doctests.)

use std::path::Path;
use std::process::Command;

use crate::support::{options, temp_store};

const README: &str = include_str!("../../../README.md");
const MARKER: &str = "<!-- readme-test:";

/// Every `sh` fenced block: (whether the marker precedes it, its text).
fn shell_blocks() -> Vec<(bool, String)> {
    let mut blocks = Vec::new();
    let mut lines = README.lines().peekable();
    let mut marked = false;
    while let Some(line) = lines.next() {
        if line.starts_with(MARKER) {
            marked = true;
            continue;
        }
        if line.trim() == "```sh" {
            let mut text = String::new();
            for line in lines.by_ref() {
                if line.trim() == "```" {
                    break;
                }
                text.push_str(line);
                text.push('\n');
            }
            blocks.push((marked, text));
        }
        marked = false;
    }
    blocks
}

#[test]
fn every_shell_block_of_the_readme_is_valid_shell() {
    let blocks = shell_blocks();
    assert!(blocks.len() >= 4, "found {} sh blocks", blocks.len());
    for (_, text) in &blocks {
        let output = Command::new("bash").args(["-n", "-c", text]).output().expect("bash");
        assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn the_readmes_comparing_and_managing_commands_run() {
    let t = temp_store();
    for lr in [0.1, 0.01, 0.001] {
        let config = serde_json::json!({"lr": lr, "batch": 256});
        let mut run = t.store.init(options().id(format!("lr-{lr}")).config(config).tags(["sweep-1", "debug"])).unwrap();
        for step in 0..100u32 {
            run.log([("loss", 2.0 / (1.0 + lr * f64::from(step))), ("acc", lr * f64::from(step))]).unwrap();
        }
        run.finish(0).unwrap();
    }
    let (marked, text) = shell_blocks().into_iter().find(|(marked, _)| *marked).expect("a readme-test block");
    assert!(marked);
    let bin = Path::new(env!("CARGO_BIN_EXE_runstore")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let cwd = tempfile::tempdir().unwrap();
    for line in text.lines().filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#')) {
        let output = Command::new("bash")
            .args(["-c", line])
            .env("PATH", &path)
            .env("RUNSTORE_DIR", &t.path)
            .env_remove("COLUMNS")
            .current_dir(cwd.path())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("bash");
        assert!(
            output.status.success(),
            "{line}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(cwd.path().join("sweep.svg").is_file() && cwd.path().join("compare.json").is_file());
    assert_eq!(t.store.run_ids().unwrap(), ["lr-0.001", "lr-0.01"]);
    let info = t.store.open_run("lr-0.001").unwrap().info().unwrap();
    assert_eq!(info.tags, ["sweep-1", "keep"]);
    assert_eq!(info.notes.as_deref(), Some("best loss; rerun with three seeds"));
}
