//! The README's shell blocks: each is valid shell; every `runstore` command in them parses (the
//! real binary accepts its subcommand and options); the block marked `readme-test` runs line by
//! line against a store holding the runs it names; and the compute-node job script of "Clusters"
//! runs as written. (The README's Rust blocks are the library's doctests.)

use std::path::Path;
use std::process::Command;

use crate::command::{bare, ok, runstore};
use crate::support::{options, temp_store};

const README: &str = include_str!("../../../README.md");
const MARKER: &str = "<!-- readme-test:";

/// A fenced block of the README.
struct Block {
    /// The heading it follows.
    heading: String,
    /// Whether the `readme-test` marker stands right before it.
    marked: bool,
    body: String,
}

/// The README's fenced blocks of `language`.
fn blocks(language: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut marked = false;
    // Inside a block: whether it is of `language`, whether it was marked, and its lines so far.
    let mut block: Option<(bool, bool, String)> = None;
    for line in README.lines() {
        match &mut block {
            Some((wanted, was_marked, body)) if line.starts_with("```") => {
                if *wanted {
                    blocks.push(Block { heading: heading.clone(), marked: *was_marked, body: std::mem::take(body) });
                }
                block = None;
            }
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.starts_with("```") => {
                block = Some((line.trim_start_matches('`').trim() == language, marked, String::new()));
                marked = false;
            }
            None if line.starts_with(MARKER) => marked = true,
            None if line.starts_with('#') => {
                heading = line.to_string();
                marked = false;
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_shell_block_of_the_readme_is_valid_shell() {
    let blocks = blocks("sh");
    assert!(blocks.len() >= 4, "found {} sh blocks", blocks.len());
    for block in &blocks {
        let output = Command::new("bash").args(["-n", "-c", &block.body]).output().expect("bash");
        assert!(output.status.success(), "{}\n{}", block.body, String::from_utf8_lossy(&output.stderr));
    }
}

/// A shell line as words (quotes joined and removed) and operators (`|`, `;`, `&&`, `||`,
/// `>`), up to a comment. Enough shell for the README's one-line commands.
fn shell_words(line: &str) -> Vec<(bool, String)> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            (None, c) if c.is_whitespace() => words.extend(word.take().map(|w| (false, w))),
            (None, '|' | ';' | '&' | '>') => {
                words.extend(word.take().map(|w| (false, w)));
                words.push((true, c.to_string()));
            }
            // Inside quotes, or an ordinary character.
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word.map(|w| (false, w)));
    words
}

/// The arguments of each `runstore` command in a shell line, up to where the command ends (an
/// operator, or `--` before a child command).
fn runstore_commands(line: &str) -> Vec<Vec<String>> {
    let words = shell_words(line);
    let mut commands = Vec::new();
    for (start, (operator, word)) in words.iter().enumerate() {
        if *operator || word != "runstore" {
            continue;
        }
        let args = words[start + 1..]
            .iter()
            .take_while(|(operator, word)| !operator && word != "--")
            .map(|(_, word)| word.clone())
            .collect();
        commands.push(args);
    }
    commands
}

#[test]
fn every_runstore_command_in_the_readme_is_one_the_binary_accepts() {
    let mut checked = 0;
    for Block { heading, body, .. } in blocks("sh") {
        for line in body.lines().filter(|line| !line.trim_start().starts_with('#')) {
            for args in runstore_commands(line) {
                // `--help` after the arguments: clap parses them all (subcommand, options and
                // their values), then prints help instead of running the command. `tag` takes
                // `-TAG` words as values, `--help` among them: there it goes before them.
                let mut command = bare();
                match args.iter().position(|word| word == "tag") {
                    Some(at) => command.args(&args[..=at]).arg("--help").args(&args[at + 1..]),
                    None => command.args(&args).arg("--help"),
                };
                let outcome = command.output().unwrap();
                assert!(
                    outcome.status.success(),
                    "{heading}: `runstore {}` is refused: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&outcome.stderr)
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "found only {checked} runstore commands");
}

#[test]
fn the_readme_compute_node_job_copies_the_run_out_and_resumes_it_from_the_copy() {
    if Command::new("bash").arg("-c").arg("mv --help | grep -q -- -T").status().map_or(true, |s| !s.success()) {
        eprintln!("skipped: no bash, or an mv without -T");
        return;
    }
    let script = blocks("sh")
        .into_iter()
        .find(|block| block.heading == "### Compute nodes without a shared store")
        .expect("the compute-node job script")
        .body;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // /scratch is the test's directory; srun runs the step, scontrol does nothing; the training
    // program appends one row with `runstore log`, as a program linking the library would.
    let script = script.replace("/scratch/", &format!("{}/scratch/", root.display()));
    std::fs::write(root.join("job.sh"), script).unwrap();
    let bin = root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let tool = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    };
    tool("srun", "exec \"$@\"");
    tool("scontrol", "exit 0");
    tool("runstore", &format!("exec {} \"$@\"", env!("CARGO_BIN_EXE_runstore")));
    tool("train", "runstore log loss=0.5");
    std::fs::copy(bin.join("train"), root.join("train")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    for node in ["node-a", "node-b"] {
        let tmp = root.join(node);
        std::fs::create_dir(&tmp).unwrap();
        let status = Command::new("bash")
            .arg(root.join("job.sh"))
            .current_dir(root)
            .env("PATH", &path)
            .env("SLURM_JOB_ID", "1234")
            .env("USER", "tester")
            .env("TMPDIR", &tmp)
            .env_remove("RUNSTORE_DIR")
            .status()
            .unwrap();
        assert!(status.success(), "the job on {node}");
    }
    let copies = root.join("scratch/tester/runstore-copies");
    let listed = ok(runstore(&copies).args(["ls", "--json"]));
    let runs: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(runs[0]["id"], "resnet-1234");
    assert_eq!(runs[0]["rows"], 2, "the second job resumed the first one's copy: {listed}");
    assert_eq!(runs[0]["attempts"], 2);
    let names: Vec<String> = std::fs::read_dir(copies.join("runs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["resnet-1234"], "no temporary copy left");
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
    let text = blocks("sh").into_iter().find(|block| block.marked).expect("a readme-test block").body;
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
