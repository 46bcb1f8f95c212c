//! Queues, sweeps and the agent, with real processes: the `runstore` binary as the agent, and
//! this test binary's `trainer` role as the command it runs for each item.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use runstore::{ItemExit, ItemState, QueueItem, RunState};
use serde_json::{Value, json};

use crate::command::{fails, ok, run, runstore};
use crate::support::{CHILD, TempStore, temp_store};

/// How long any one expected event may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// Pushes an item with this id and config through the command line.
fn push(t: &TempStore, queue: &str, id: &str, config: &Value) {
    let said = ok(runstore(&t.path).args(["queue", "push", queue, "--id", id, "--config", &config.to_string()]));
    assert_eq!(said, format!("pushed {id} to queue {queue}\n"));
}

/// The items of `queue` as `queue ls --json` prints them.
fn ls(t: &TempStore, queue: &str) -> Vec<Value> {
    let text = ok(runstore(&t.path).args(["queue", "ls", queue, "--json"]));
    serde_json::from_str::<Vec<Value>>(&text).expect("queue ls --json")
}

fn item<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items.iter().find(|item| item["id"] == id).unwrap_or_else(|| panic!("no item {id} in {items:?}"))
}

/// An agent process on `queue` whose command is this test binary's `trainer` role, with
/// its stdout (the agent's events and the trainer's `@@` reports) read line by line.
struct Agent {
    process: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    fn start(t: &TempStore, queue: &str, options: &[&str], record: Option<&Path>) -> Agent {
        let exe = std::env::current_exe().expect("test binary");
        let mut command = runstore(&t.path);
        command.args(["agent", queue]).args(options).arg("--").arg(exe).args([
            "--exact",
            "children::trainer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ]);
        command.env(CHILD, "trainer").stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Some(record) = record {
            command.env("TEST_RECORD", record);
        }
        let mut process = command.spawn().expect("start the agent");
        let stdout = process.stdout.take().expect("piped stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Agent { process, lines, seen: Vec::new() }
    }

    /// Waits for a line starting with `prefix` and returns the rest of it.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {prefix:?} within {PATIENCE:?}; saw {:#?}", self.seen),
                Err(RecvTimeoutError::Disconnected) => panic!("output ended before {prefix:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// The pid in `started ID pid P`, for item `id`.
    fn started(&mut self, id: &str) -> u32 {
        let rest = self.expect(&format!("started {id} pid "));
        rest.parse().expect("pid")
    }

    /// Waits for the agent to exit; returns its exit code and every line it printed.
    fn end(mut self) -> (i32, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.process.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the agent did not stop; saw {:#?}", self.seen);
            std::thread::sleep(Duration::from_millis(10));
        };
        // The output ends when the agent and the commands it started have exited.
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        (status.code().expect("exited, not killed"), std::mem::take(&mut self.seen))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // A failed test must not leave an agent behind.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Runs an agent to its end and expects exit 0; returns its lines.
fn run_agent(t: &TempStore, queue: &str, options: &[&str]) -> Vec<String> {
    let (code, lines) = Agent::start(t, queue, options, None).end();
    assert_eq!(code, 0, "{lines:#?}");
    lines
}

/// The lines of an agent's events (not its command's output) about item `id`.
fn events<'a>(lines: &'a [String], id: &str) -> Vec<&'a str> {
    let events = ["claimed", "started", "signal", "exited", "lost", "done", "requeued", "failed"];
    lines
        .iter()
        .filter(|line| {
            let mut words = line.split(' ');
            events.contains(&words.next().unwrap_or_default()) && words.next() == Some(id)
        })
        .map(String::as_str)
        .collect()
}

fn send(signal: &str, pid: u32) {
    let status = Command::new("kill").args(["-s", signal, &pid.to_string()]).status().expect("kill");
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// Asserts that run `id` holds steps `0..steps`, each once.
fn assert_continuous(t: &TempStore, id: &str, steps: u64) {
    let reader = t.store.open_run(id).unwrap();
    let logged: Vec<u64> = reader.history(..).unwrap().map(|row| row.unwrap().step()).collect();
    assert_eq!(logged, (0..steps).collect::<Vec<_>>(), "run {id}: every step exactly once");
}

#[test]
fn an_item_that_fails_once_is_retried_and_ends_done_with_a_continuous_history() {
    let t = temp_store();
    push(&t, "q", "flaky", &json!({"steps": 20, "at": 10, "plan": {"1": "fail"}}));
    let lines = run_agent(&t, "q", &[]);
    let pid = |line: &str| line.rsplit(' ').next().unwrap().to_string();
    let said = events(&lines, "flaky");
    assert_eq!(said.len(), 8, "{said:#?}");
    assert_eq!(said[0], "claimed flaky attempt 1");
    assert_eq!(said[2], "exited flaky code 1");
    assert_eq!(said[3], "requeued flaky (exit 1, failure 1 of 3)");
    assert_eq!(said[4], "claimed flaky attempt 2");
    assert_ne!(pid(said[1]), pid(said[5]), "a new process for the second attempt");
    assert_eq!(said[6], "exited flaky code 0");
    assert_eq!(said[7], "done flaky");
    assert_eq!(lines.last().unwrap(), "stopping: no claimable item in queue q");

    let items = ls(&t, "q");
    let flaky = item(&items, "flaky");
    assert_eq!((flaky["state"].as_str(), flaky["attempts"].as_u64()), (Some("done"), Some(2)));
    assert_eq!(flaky["failures"], 1);
    assert_eq!(flaky["last_exit"], json!({"kind": "code", "code": 0}));
    assert_eq!(flaky["claimant"], Value::Null);

    let reader = t.store.open_run("flaky").unwrap();
    assert_eq!(reader.info().unwrap().config["steps"], 20, "the command got the item's config");
    let attempts = reader.attempts().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0].outcome, attempts[0].first_step), (Some(RunState::Failed), 0));
    assert_eq!((attempts[1].outcome, attempts[1].first_step), (Some(RunState::Finished), 10));
    assert_continuous(&t, "flaky", 20);
}

#[test]
fn a_command_killed_by_sigkill_is_requeued_and_resumes_at_the_right_step() {
    let t = temp_store();
    push(&t, "q", "victim", &json!({"steps": 12, "at": 7, "plan": {"1": "hang"}}));
    let mut first = Agent::start(&t, "q", &["--count", "1"], None);
    let pid = first.started("victim");
    first.expect("@@ hanging");
    send("KILL", pid);
    let (code, lines) = first.end();
    assert_eq!(code, 0, "{lines:#?}");
    let said = events(&lines, "victim");
    assert_eq!(said[2..], ["exited victim signal SIGKILL", "requeued victim (killed by SIGKILL)"], "{said:#?}");
    assert_eq!(lines.last().unwrap(), "stopping: ran 1 item (--count 1)");

    let victim = item(&ls(&t, "q"), "victim").clone();
    assert_eq!((victim["state"].as_str(), victim["attempts"].as_u64()), (Some("pending"), Some(1)));
    assert_eq!(
        (victim["failures"].as_u64(), victim["last_exit"].clone()),
        (Some(0), json!({"kind": "signal", "signal": 9}))
    );
    let info = t.store.open_run("victim").unwrap().info().unwrap();
    assert_eq!((info.state, info.next_step), (RunState::Crashed, 7), "every flushed row is there");

    let mut second = Agent::start(&t, "q", &[], None);
    second.expect("claimed victim attempt 2");
    let resumed = second.expect("@@ init ok victim");
    assert_eq!(resumed, "7 2", "resumed at step 7, as attempt 2");
    second.expect("done victim");
    let (code, _) = second.end();
    assert_eq!(code, 0);
    let attempts = t.store.open_run("victim").unwrap().attempts().unwrap();
    assert_eq!(
        attempts.iter().map(|a| (a.first_step, a.outcome)).collect::<Vec<_>>(),
        [(0, Some(RunState::Crashed)), (7, Some(RunState::Finished))]
    );
    assert_continuous(&t, "victim", 12);
}

#[test]
fn mark_preempting_then_exit_0_is_done_and_then_non_zero_is_preempted_and_requeued() {
    let t = temp_store();
    push(&t, "q", "clean", &json!({"steps": 8, "at": 5, "plan": {"1": "preempt:0"}}));
    push(&t, "q", "cut", &json!({"steps": 8, "at": 5, "plan": {"1": "preempt:143"}}));
    let lines = run_agent(&t, "q", &["--count", "2", "--max-attempts", "1"]);
    assert_eq!(events(&lines, "clean")[2..], ["exited clean code 0", "done clean"]);
    assert_eq!(
        events(&lines, "cut")[2..],
        ["exited cut code 143", "requeued cut (exit 143, preempted)"],
        "with --max-attempts 1 a failure would have failed it: a preemption is no failure"
    );
    assert_eq!(t.store.open_run("clean").unwrap().state().unwrap(), RunState::Finished);
    let info = t.store.open_run("cut").unwrap().info().unwrap();
    assert_eq!((info.state, info.exit_code), (RunState::Preempted, Some(143)));

    let items = ls(&t, "q");
    assert_eq!(item(&items, "clean")["state"], "done");
    let cut = item(&items, "cut");
    assert_eq!((cut["state"].as_str(), cut["failures"].as_u64()), (Some("pending"), Some(0)));
    assert_eq!(cut["last_exit"], json!({"kind": "preempted", "code": 143}));

    // The requeued item resumes where the preempted attempt stopped.
    let lines = run_agent(&t, "q", &[]);
    assert_eq!(events(&lines, "cut").last(), Some(&"done cut"));
    assert!(events(&lines, "clean").is_empty(), "a done item is not run again");
    assert_eq!(t.store.open_run("cut").unwrap().attempts().unwrap()[1].first_step, 5);
    assert_continuous(&t, "cut", 8);
}

/// A pseudo-random generator for the test's own choices (splitmix64).
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn three_agents_run_twenty_items_each_done_once_and_never_twice_at_a_time() {
    let t = temp_store();
    let seed = u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    println!("failing items chosen with seed {seed}");
    let ids: Vec<String> = (0..20).map(|i| format!("item-{i:02}")).collect();
    let mut flaky: Vec<bool> = (0..20).map(|i| mix(seed + i).is_multiple_of(3)).collect();
    flaky[7] = true;
    for (id, &flaky) in ids.iter().zip(&flaky) {
        let mut config = json!({"steps": 3, "pause_ms": 15});
        if flaky {
            config["at"] = json!(1);
            config["plan"] = json!({"1": "fail"});
        }
        push(&t, "q", id, &config);
    }
    let record = t.path.with_file_name("record.txt");
    let agents: Vec<Agent> = (0..3).map(|_| Agent::start(&t, "q", &[], Some(&record))).collect();
    let outputs: Vec<Vec<String>> = agents
        .into_iter()
        .map(|agent| {
            let (code, lines) = agent.end();
            assert_eq!(code, 0, "{lines:#?}");
            lines
        })
        .collect();

    let all: Vec<&String> = outputs.iter().flatten().collect();
    let items = ls(&t, "q");
    for (id, &flaky) in ids.iter().zip(&flaky) {
        let state = item(&items, id);
        let attempts = if flaky { 2 } else { 1 };
        assert_eq!(state["state"], "done", "{id}: {state}");
        assert_eq!((state["attempts"].as_u64(), state["failures"].as_u64()), (Some(attempts), Some(attempts - 1)));
        let done = all.iter().filter(|line| **line == &format!("done {id}")).count();
        assert_eq!(done, 1, "{id} is done exactly once");
        let claims = all.iter().filter(|line| line.starts_with(&format!("claimed {id} "))).count();
        assert_eq!(claims as u64, attempts, "{id}");
        let run = t.store.open_run(id).unwrap();
        assert_eq!(run.state().unwrap(), RunState::Finished, "{id}");
        assert_eq!(run.attempts().unwrap().len() as u64, attempts, "{id}");
        assert_continuous(&t, id, 3);
    }
    let working = outputs.iter().filter(|lines| lines.iter().any(|line| line.starts_with("claimed "))).count();
    assert!(working >= 2, "the agents shared the queue: {outputs:#?}");

    // No item ran twice at the same time: each item's command runs, start to end, one after another.
    let text = std::fs::read_to_string(&record).unwrap();
    let mut spans: HashMap<&str, Vec<(&str, u128)>> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        let (id, event, time) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
        spans.entry(id).or_default().push((event, time.parse().unwrap()));
    }
    for (id, &flaky) in ids.iter().zip(&flaky) {
        let mut events = spans.remove(id.as_str()).unwrap_or_default();
        events.sort_by_key(|&(event, time)| (time, event == "start"));
        let expected: &[&str] = if flaky { &["start", "end", "start", "end"] } else { &["start", "end"] };
        assert_eq!(events.iter().map(|&(event, _)| event).collect::<Vec<_>>(), expected, "{id}: {events:?}");
    }
}

#[test]
fn an_agent_killed_by_sigkill_leaves_its_item_claimable() {
    let t = temp_store();
    push(&t, "q", "orphaned", &json!({"steps": 8, "at": 4, "plan": {"1": "hang"}}));
    let mut first = Agent::start(&t, "q", &[], None);
    let command = first.started("orphaned");
    first.expect("@@ hanging");
    first.process.kill().unwrap();
    first.process.wait().unwrap();
    drop(first);

    // The command did not inherit the agent's claim lock (close-on-exec): the OS released it.
    let claim = std::fs::File::open(t.path.join("queues/q/claims/orphaned")).unwrap();
    claim.try_lock().expect("the claim lock is free once the agent is dead");
    drop(claim);
    // Its command outlived it and still writes the run: the item is not run a second time.
    assert_eq!(item(&ls(&t, "q"), "orphaned")["state"], "running");
    let lines = run_agent(&t, "q", &[]);
    assert_eq!(lines, ["stopping: no claimable item in queue q"]);

    // Once that process is gone too (the whole machine was lost), the item is claimable.
    send("KILL", command);
    let deadline = Instant::now() + PATIENCE;
    while t.store.open_run("orphaned").unwrap().state().unwrap() != RunState::Crashed {
        assert!(Instant::now() < deadline, "the command did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    let orphaned = item(&ls(&t, "q"), "orphaned").clone();
    assert_eq!((orphaned["state"].as_str(), orphaned["claimant"].clone()), (Some("pending"), Value::Null));
    assert_eq!(orphaned["last_exit"], json!({"kind": "lost"}));

    let lines = run_agent(&t, "q", &[]);
    assert_eq!(events(&lines, "orphaned")[0], "claimed orphaned attempt 2");
    assert_eq!(events(&lines, "orphaned").last(), Some(&"done orphaned"));
    assert_eq!(item(&ls(&t, "q"), "orphaned")["state"], "done");
    assert_eq!(t.store.open_run("orphaned").unwrap().attempts().unwrap()[1].first_step, 4);
    assert_continuous(&t, "orphaned", 8);
}

#[test]
fn an_agent_killed_while_its_command_starts_leaves_the_item_to_that_command() {
    let t = temp_store();
    // The command takes four seconds before `init`, as a Python program importing a framework
    // might: its run is not locked yet when its agent dies.
    push(&t, "q", "slow", &json!({"steps": 4, "slow_start_ms": 4000}));
    let mut first = Agent::start(&t, "q", &[], None);
    let command = first.started("slow");
    first.expect("@@ starting");
    first.process.kill().unwrap();
    first.process.wait().unwrap();
    // `first` stays: its reader drains the output the orphaned command still writes.
    assert!(t.store.open_run("slow").is_err(), "the command has not created its run yet");

    // Another agent on this host does not start a second command while the first one runs.
    assert_eq!(item(&ls(&t, "q"), "slow")["state"], "running");
    let lines = run_agent(&t, "q", &[]);
    assert_eq!(lines, ["stopping: no claimable item in queue q"], "the item must not run twice");

    // The first command runs to its end (nobody settles it: its agent is gone); then the item
    // is claimable, and the next agent finds the run done.
    let deadline = Instant::now() + PATIENCE;
    while Path::new(&format!("/proc/{command}")).exists()
        && !std::fs::read_to_string(format!("/proc/{command}/stat")).is_ok_and(|stat| stat.contains(") Z"))
    {
        assert!(Instant::now() < deadline, "the first command did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_continuous(&t, "slow", 4);
    let lines = run_agent(&t, "q", &[]);
    assert_eq!(events(&lines, "slow")[0], "claimed slow attempt 2");
    assert_eq!(events(&lines, "slow").last(), Some(&"done slow"));
    assert_continuous(&t, "slow", 4);
    assert_eq!(t.store.open_run("slow").unwrap().attempts().unwrap().len(), 2, "one run of the item at a time");
    drop(first);
}

#[test]
fn sigint_to_the_agent_reaches_the_command_and_requeues_the_item_even_after_exit_0() {
    let t = temp_store();
    push(&t, "q", "interrupted", &json!({"steps": 30, "pause_ms": 10, "plan": {"1": "obey"}}));
    push(&t, "q", "untouched", &json!({"steps": 1}));
    let mut agent = Agent::start(&t, "q", &[], None);
    let pid = agent.started("interrupted");
    agent.expect("@@ listening");
    agent.expect("@@ flushed 2");
    send("INT", agent.process.id());
    agent.expect("signal interrupted SIGINT passed to pid");
    let (code, lines) = agent.end();
    assert_eq!(code, 130, "128 + SIGINT: {lines:#?}");
    let said = events(&lines, "interrupted");
    assert_eq!(said[2], format!("signal interrupted SIGINT passed to pid {pid}"));
    // The command saw the signal, checkpointed and exited 0, as W&B's agent does on Ctrl-C:
    // the item is requeued all the same.
    assert_eq!(said[3..], ["exited interrupted code 0", "requeued interrupted (interrupted by SIGINT, then exit 0)"]);
    assert_eq!(lines.last().unwrap(), "stopping: interrupted by SIGINT");
    assert!(events(&lines, "untouched").is_empty(), "the agent stops after an interruption");

    let info = t.store.open_run("interrupted").unwrap().info().unwrap();
    assert_eq!((info.state, info.exit_code), (RunState::Preempted, Some(143)), "the command's signal helper ran");
    let items = ls(&t, "q");
    let interrupted = item(&items, "interrupted");
    assert_eq!((interrupted["state"].as_str(), interrupted["failures"].as_u64()), (Some("pending"), Some(0)));
    assert_eq!(interrupted["last_exit"], json!({"kind": "interrupted", "signal": 2, "code": 0}));
    assert_eq!(
        (item(&items, "untouched")["state"].as_str(), item(&items, "untouched")["attempts"].as_u64()),
        (Some("pending"), Some(0))
    );

    // Resumed later, it continues where the interrupted attempt stopped.
    let lines = run_agent(&t, "q", &[]);
    assert_eq!(events(&lines, "interrupted").last(), Some(&"done interrupted"));
    assert_eq!(t.store.open_run("interrupted").unwrap().attempts().unwrap()[1].first_step, info.next_step);
    let steps = info.next_step.max(30);
    assert_continuous(&t, "interrupted", steps);
}

/// The configs of `queue`, in queue order.
fn configs(t: &TempStore, queue: &str) -> Vec<Value> {
    ls(t, queue).into_iter().map(|item| item["config"].clone()).collect()
}

#[test]
fn a_grid_sweep_adds_the_cartesian_product_in_the_documented_order() {
    let t = temp_store();
    let space = t.path.with_file_name("grid.json");
    std::fs::write(&space, r#"{"opt": ["sgd", "adam"], "lr": [0.1, 0.01], "batch": [32, 64, 128]}"#).unwrap();
    let said = ok(runstore(&t.path).args(["sweep", "g", "--grid"]).arg(&space));
    assert!(said.starts_with("added 12 items to queue g (the grid of "), "{said}");
    let mut expected = Vec::new();
    // Names in order (batch, lr, opt), the last varying fastest.
    for batch in [32, 64, 128] {
        for lr in [0.1, 0.01] {
            for opt in ["sgd", "adam"] {
                expected.push(json!({"batch": batch, "lr": lr, "opt": opt}));
            }
        }
    }
    assert_eq!(configs(&t, "g"), expected);
    let items = ls(&t, "g");
    assert!(items.iter().all(|item| item["state"] == "pending" && item["attempts"] == 0));
    let ids: std::collections::HashSet<&str> = items.iter().map(|item| item["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 12, "each item has its own generated id");
    assert!(ids.iter().all(|id| runstore::validate_run_id(id).is_ok() && id.len() == 8));

    // A second sweep appends.
    ok(runstore(&t.path).args(["sweep", "g", "--grid"]).arg(&space));
    assert_eq!(configs(&t, "g")[12..], expected[..]);
}

#[test]
fn a_random_sweep_is_deterministic_for_a_seed_and_stays_in_its_ranges() {
    let t = temp_store();
    let space = t.path.with_file_name("random.json");
    std::fs::write(
        &space,
        r#"{"opt": ["sgd", "adam", "lion"], "dropout": {"min": 0.1, "max": 0.5},
            "layers": {"min": 2, "max": 6, "int": true}, "lr": {"log_min": 1e-5, "log_max": 1e-1},
            "momentum": {"min": 0.8, "max": 0.99, "int": false}}"#,
    )
    .unwrap();
    let sweep = |queue: &str, count: &str, seed: &str| {
        let said = ok(runstore(&t.path)
            .args(["sweep", queue, "--random"])
            .arg(&space)
            .args(["--count", count, "--seed", seed]));
        assert!(said.starts_with(&format!("added {count} items to queue {queue} (random draws from ")), "{said}");
        assert!(said.trim_end().ends_with(&format!(", seed {seed})")), "{said}");
        configs(&t, queue)
    };
    let a = sweep("a", "200", "42");
    assert_eq!(sweep("b", "200", "42"), a, "the same seed draws the same configs");
    assert_eq!(sweep("c", "50", "42"), a[..50], "a shorter draw is a prefix");
    assert_ne!(sweep("d", "200", "43"), a, "another seed draws others");

    let mut seen_opt = BTreeMap::new();
    let mut seen_layers = BTreeMap::new();
    let (mut low_lr, mut high_lr) = (0, 0);
    for config in &a {
        assert_eq!(config.as_object().unwrap().len(), 5, "{config}");
        *seen_opt.entry(config["opt"].as_str().unwrap().to_string()).or_insert(0) += 1;
        let dropout = config["dropout"].as_f64().unwrap();
        assert!((0.1..0.5).contains(&dropout), "{config}");
        let momentum = config["momentum"].as_f64().unwrap();
        assert!((0.8..0.99).contains(&momentum), "{config}");
        let layers = config["layers"].as_i64().expect("an integer");
        assert!((2..=6).contains(&layers), "{config}");
        *seen_layers.entry(layers).or_insert(0) += 1;
        let lr = config["lr"].as_f64().unwrap();
        assert!((1e-5..1e-1).contains(&lr), "{config}");
        // Log-uniform: as many draws below 1e-3 (two decades of four) as above.
        if lr < 1e-3 {
            low_lr += 1;
        } else {
            high_lr += 1;
        }
    }
    assert_eq!(seen_opt.len(), 3, "every choice is drawn: {seen_opt:?}");
    assert_eq!(seen_layers.keys().copied().collect::<Vec<_>>(), [2, 3, 4, 5, 6], "both ends included");
    assert!(low_lr > 60 && high_lr > 60, "log-uniform: {low_lr} below 1e-3, {high_lr} above");
}

#[test]
fn a_bad_space_file_is_a_clear_error_naming_the_file_and_the_problem() {
    let t = temp_store();
    let space = t.path.with_file_name("space.json");
    let cases = [
        ("{", "--grid", "is not valid JSON"),
        ("[1, 2]", "--grid", "expected a JSON object"),
        ("{}", "--grid", "it has no parameters"),
        (r#"{"lr": []}"#, "--grid", "parameter \"lr\" has no values"),
        (r#"{"lr": 0.1}"#, "--grid", "parameter \"lr\" is a number"),
        (r#"{"lr": {"min": 0, "max": 1}}"#, "--grid", "parameter \"lr\" is a range: a grid takes lists"),
        (r#"{"lr": {"min": 1, "max": 0}}"#, "--random", "parameter \"lr\": min must be below max"),
        (r#"{"lr": {"min": 0}}"#, "--random", "parameter \"lr\" is not a valid range"),
        (r#"{"lr": {"log_min": 0, "log_max": 1}}"#, "--random", "log_min must be above 0"),
        (r#"{"lr": {"mean": 0}}"#, "--random", "parameter \"lr\" has an unknown key \"mean\""),
        (r#"{"n": {"min": 1.5, "max": 4, "int": true}}"#, "--random", "min must be a whole number"),
        (r#"{"n": {"min": "1", "max": 4}}"#, "--random", "min must be a number, not a string"),
    ];
    for (text, mode, says) in cases {
        std::fs::write(&space, text).unwrap();
        let mut command = runstore(&t.path);
        command.args(["sweep", "q", mode]).arg(&space);
        if mode == "--random" {
            command.args(["--count", "3"]);
        }
        fails(&mut command, 2, &format!("invalid sweep space {}: ", space.display()));
        fails(&mut command, 2, says);
    }
    fails(
        runstore(&t.path).args(["sweep", "q", "--grid", "/no/such/space.json"]),
        2,
        "/no/such/space.json: cannot read it",
    );
    assert!(!t.path.join("queues").join("q").exists(), "nothing was queued");
    // Usage: a mode is required, --count goes with --random.
    for usage in
        [&["sweep", "q"][..], &["sweep", "q", "--random", "x.json"], &["sweep", "q", "--grid", "x", "--count", "2"]]
    {
        let outcome = run(runstore(&t.path).args(usage));
        assert_eq!(outcome.code, 2, "{usage:?}: {}", outcome.stderr);
    }
}

#[test]
fn queue_commands_push_list_and_remove_with_the_documented_exit_codes() {
    let t = temp_store();
    fails(runstore(&t.path).args(["queue", "ls", "q"]), 3, "queue \"q\" does not exist");
    fails(runstore(&t.path).args(["agent", "q", "--", "true"]), 3, "queue \"q\" does not exist");
    let said = ok(runstore(&t.path).args(["queue", "push", "q", "--config", r#"{"lr": 0.1}"#]));
    let generated = said.strip_prefix("pushed ").unwrap().strip_suffix(" to queue q\n").unwrap().to_string();
    assert!(runstore::validate_run_id(&generated).is_ok() && generated.len() == 8, "{generated}");
    push(&t, "q", "mine", &json!({"lr": 0.01}));
    fails(runstore(&t.path).args(["queue", "push", "q", "--id", "mine", "--config", "{}"]), 4, "already has an item");
    fails(runstore(&t.path).args(["queue", "push", "q", "--config", "[1]"]), 2, "expected a JSON object");
    fails(runstore(&t.path).args(["queue", "push", "q", "--config", "{"]), 2, "--config is not valid JSON");
    fails(runstore(&t.path).args(["queue", "push", "../q", "--config", "{}"]), 2, "invalid queue name");
    fails(runstore(&t.path).args(["queue", "push", "q", "--id", "a/b", "--config", "{}"]), 2, "invalid run id");
    assert_eq!(run(runstore(&t.path).args(["agent", "q", "--max-attempts", "0", "--", "true"])).code, 2, "usage");

    let table = ok(runstore(&t.path).args(["queue", "ls", "q"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].contains("CONFIG"), "{table}");
    assert!(lines[1].starts_with(&generated) && lines[1].contains("pending") && lines[1].contains(r#"{"lr":0.1}"#));
    assert!(lines[2].starts_with("mine"), "{table}");
    assert_eq!(lines[3], "2 items: 2 pending, 0 running, 0 done, 0 failed");

    // An item a live agent has claimed cannot be removed; this process plays the agent.
    let queue = t.store.queue("q").unwrap();
    let claim = queue.claim().unwrap().unwrap();
    assert_eq!(claim.item().id, generated);
    let listed = ls(&t, "q");
    assert_eq!(item(&listed, &generated)["state"], "running");
    assert_eq!(item(&listed, &generated)["claimant"]["pid"], std::process::id());
    fails(runstore(&t.path).args(["queue", "rm", "q", &generated]), 5, "is being run by pid");
    let settled: QueueItem = claim.settle(ItemExit::Code { code: 0 }, 3).unwrap();
    assert_eq!(settled.state, ItemState::Done);

    assert_eq!(ok(runstore(&t.path).args(["queue", "rm", "q", "mine"])), "removed mine (pending) from queue q\n");
    fails(runstore(&t.path).args(["queue", "rm", "q", "mine"]), 3, "has no item \"mine\"");
    assert_eq!(ls(&t, "q").len(), 1);

    // Help: examples, and 80 columns.
    for command in [&["queue"][..], &["queue", "push"], &["queue", "ls"], &["queue", "rm"], &["sweep"], &["agent"]] {
        let help = ok(runstore(&t.path).args(command).arg("--help"));
        assert!(help.contains("Examples:\n  runstore "), "{command:?} --help has an example:\n{help}");
        for line in help.lines() {
            assert!(line.chars().count() <= 80, "{command:?} --help is wider than 80 columns: {line:?}");
        }
    }
}
