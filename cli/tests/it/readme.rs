//! The README's shell blocks: every `runstore` command in them parses (the real binary accepts
//! its subcommand and options), and the compute-node job script of "Clusters" runs as written.

use std::path::Path;

use crate::command::{bare, ok, runstore};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).expect("README.md")
}

/// The bodies of the README's fenced blocks of `language`, each with the heading it follows.
fn blocks(text: &str, language: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    // Inside a block: whether it is of `language`, and its lines so far.
    let mut block: Option<(bool, String)> = None;
    for line in text.lines() {
        match &mut block {
            Some((wanted, body)) if line.starts_with("```") => {
                if *wanted {
                    blocks.push((heading.clone(), std::mem::take(body)));
                }
                block = None;
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.starts_with("```") => block = Some((line.trim_start_matches('`') == language, String::new())),
            None if line.starts_with('#') => heading = line.to_string(),
            None => {}
        }
    }
    blocks
}

/// The words of each `runstore` command in a shell line, up to where the command ends (a pipe,
/// `;`, `&&`, a comment, or `--` before a child command), quotes removed.
fn runstore_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let words: Vec<&str> = line.split_whitespace().collect();
    for (start, word) in words.iter().enumerate() {
        if *word != "runstore" {
            continue;
        }
        let args: Vec<String> = words[start + 1..]
            .iter()
            .take_while(|w| !matches!(**w, "|" | ";" | "&&" | "||" | "--" | "#") && !w.starts_with('#'))
            .map(|w| w.trim_matches(['"', '\'']).to_string())
            .collect();
        commands.push(args);
    }
    commands
}

#[test]
fn every_runstore_command_in_the_readme_is_one_the_binary_accepts() {
    let text = readme();
    let mut checked = 0;
    for (heading, body) in blocks(&text, "sh") {
        for line in body.lines().filter(|line| !line.trim_start().starts_with('#')) {
            for args in runstore_commands(line) {
                // `--help` after the arguments: clap parses them all (subcommand, options and
                // their values), then prints help instead of running the command.
                let outcome = bare().args(&args).arg("--help").output().unwrap();
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
    if std::process::Command::new("bash")
        .arg("-c")
        .arg("mv --help | grep -q -- -T")
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: no bash, or an mv without -T");
        return;
    }
    let (_, script) = blocks(&readme(), "sh")
        .into_iter()
        .find(|(heading, _)| heading == "### Compute nodes without a shared store")
        .expect("the compute-node job script");
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
        let status = std::process::Command::new("bash")
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
