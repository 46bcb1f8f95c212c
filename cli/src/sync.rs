//! `runstore sync`: push runs to an MLflow tracking server, incrementally and idempotently.
//!
//! What was pushed is remembered per run and server in `<store>/sync/mlflow-<hash>/<run>.json`:
//! the MLflow run id, the last step pushed, the params pushed, and the batch in flight. The
//! state is written (atomically, synced) before and after each `log-batch`: after a crash or a
//! network error, the next sync asks MLflow which points of the batch in flight arrived and
//! sends only the others, so no point is sent twice and none is lost. System metrics
//! (`system/...`, sampled by time) go to the live history's MLflow run as MLflow's own system
//! metrics are logged: key `system/...`, step = the sample's index, its time as timestamp; sent
//! counts and the batch in flight are remembered per metric the same way.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use runstore::{Branch, History, RunInfo, RunSnapshot, RunState, Store};
use serde::{Deserialize, Serialize};

use crate::exit::Failure;
use crate::mlflow::{self, Client, Point};
use crate::output;

/// Push runs to an MLflow server (REST API 2.0), incrementally.
///
/// Config becomes params, tags and notes become tags, the state becomes the run status, and
/// every metric point goes with its step.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each runstore run becomes an MLflow run in the experiment given with
--experiment, else the run's project, else \"runstore\". Config keys become
params (nested keys joined with dots; values cut to 6000 characters, with a
warning), tags become tags (value \"true\"), notes the tag mlflow.note.content,
and runstore.* tags record the id, state, attempts and fork origin. Status:
running/preempting -> RUNNING, finished -> FINISHED, failed -> FAILED,
crashed/preempted -> KILLED. A point's timestamp is the time its row was
logged. System metrics (system/cpu_percent, ...) are sent under their names,
as MLflow's system metrics are (its \"System metrics\" tab shows them): each
sample with its time and, as step, its index in the series (0, 1, 2...). NaN and infinities are sent as
MLflow's \"NaN\", \"Infinity\", \"-Infinity\"; MLflow's SQL store keeps infinities as
+-1.7976931348623157e308.

Syncing again sends only what is new, and a live run can be synced while it
trains. Archived branches (rows a rewind set aside) become MLflow runs of their
own, tagged runstore.branch_of and runstore.branch; --live-only skips them. If a
run was rewound below what was already sent, the MLflow run that holds those
rows becomes the branch's, and the live history starts a new MLflow run.

Examples:
  runstore sync --mlflow http://127.0.0.1:5000
  runstore sync --mlflow https://mlflow.example.org resnet-7 --experiment vision")]
pub struct Args {
    /// The tracking server's URL.
    #[arg(long, value_name = "URL")]
    mlflow: String,
    /// The runs to sync [default: every run of the store].
    ids: Vec<String>,
    /// The MLflow experiment [default: the run's project, else "runstore"].
    #[arg(long, value_name = "NAME")]
    experiment: Option<String>,
    /// Skip archived branches.
    #[arg(long)]
    live_only: bool,
}

/// What was pushed of one history (the live one or a branch) into one MLflow run.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Target {
    mlflow_run: Option<String>,
    pushed_through: Option<u64>,
    /// Steps of the batch being sent when the state was last written: their points may or may
    /// not have arrived.
    inflight: Option<(u64, u64)>,
    params: BTreeMap<String, String>,
    /// System metrics: samples sent of each (their MLflow steps are `0..sent`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    system_sent: BTreeMap<String, u64>,
    /// System samples of the batch being sent when the state was last written, by metric: the
    /// first and last index; they may or may not have arrived.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    system_inflight: BTreeMap<String, (u64, u64)>,
    /// For a live MLflow run handed to a branch by a rewind: the live history's rows up to this
    /// step are the history as it was before the rewind, and still to be sent to it (those a
    /// lost batch never delivered) before the branch's own rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fill_through: Option<u64>,
}

impl Target {
    /// The last step this MLflow run may hold: pushed, or sent in the batch in flight.
    fn reached(&self) -> Option<u64> {
        self.pushed_through.max(self.inflight.map(|(_, last)| last))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    url: String,
    experiment_id: Option<String>,
    live: Target,
    /// Branches known at the last sync.
    branches_seen: u32,
    branches: BTreeMap<u32, Target>,
}

/// Counts for the summary line.
#[derive(Default)]
struct Totals {
    runs: u64,
    created: u64,
    rows: u64,
    points: u64,
    /// System metrics' samples.
    samples: u64,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let client = Client::new(&args.mlflow)?;
    let ids = if args.ids.is_empty() { store.run_ids()? } else { args.ids.clone() };
    for id in &ids {
        runstore::validate_run_id(id)?;
    }
    let dir = store.path().join("sync").join(format!("mlflow-{:016x}", fnv(args.mlflow.trim_end_matches('/'))));
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} rows sent") {
            bar.set_style(style);
        }
        bar
    });
    let mut totals = Totals::default();
    let mut syncer = Syncer { client: &client, args, dir: &dir, totals: &mut totals, bar: bar.as_ref() };
    for id in &ids {
        if let Some(bar) = &syncer.bar {
            bar.set_message(id.clone());
        }
        syncer.run(store, id)?;
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let samples = match totals.samples {
        0 => String::new(),
        n => format!(" and {}", output::count(n, "system sample", "system samples")),
    };
    output::stdout_line(&format!(
        "synced {} to {}: {} created, {} ({}){samples} sent",
        output::count(totals.runs, "run", "runs"),
        args.mlflow,
        output::count(totals.created, "MLflow run", "MLflow runs"),
        output::count(totals.rows, "row", "rows"),
        output::count(totals.points, "point", "points")
    ))
}

struct Syncer<'a> {
    client: &'a Client,
    args: &'a Args,
    dir: &'a Path,
    totals: &'a mut Totals,
    bar: Option<&'a indicatif::ProgressBar>,
}

impl Syncer<'_> {
    fn state_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn load(&self, id: &str) -> Result<State, Failure> {
        let path = self.state_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
                Failure::input(format!("{} is not a sync state: remove it to sync the run anew", path.display()))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(State { url: self.args.mlflow.clone(), ..State::default() })
            }
            Err(source) => Err(Failure::Output { target: path.display().to_string(), source }),
        }
    }

    fn save(&self, id: &str, state: &State) -> Result<(), Failure> {
        let path = self.state_path(id);
        let failed = |source| Failure::Output { target: path.display().to_string(), source };
        std::fs::create_dir_all(self.dir).map_err(failed)?;
        output::write_file(&path, |out| {
            serde_json::to_writer_pretty(&mut *out, state).map_err(std::io::Error::from)?;
            Ok(())
        })?;
        // The rename must reach the disk before the next request is sent.
        std::fs::File::open(self.dir).and_then(|dir| dir.sync_all()).map_err(failed)
    }

    fn run(&mut self, store: &Store, id: &str) -> Result<(), Failure> {
        // One snapshot for the whole run: info, branches, attempts and every history pushed.
        let reader = store.open_run(id)?.snapshot()?;
        let info = reader.info()?;
        let branches = reader.branches()?;
        let attempts = reader.attempts()?;
        let mut state = self.load(id)?;
        let experiment = match &state.experiment_id {
            Some(experiment) => experiment.clone(),
            None => {
                let name =
                    self.args.experiment.clone().or_else(|| info.project.clone()).unwrap_or_else(|| "runstore".into());
                let experiment = self.client.experiment(&name)?;
                state.experiment_id = Some(experiment.clone());
                experiment
            }
        };
        let new_branches: Vec<&Branch> = branches.iter().filter(|branch| branch.id >= state.branches_seen).collect();
        for (index, branch) in new_branches.iter().enumerate() {
            if state.live.reached().is_some_and(|reached| reached > branch.rewound_to) {
                // That MLflow run holds (or may hold: a batch in flight) rows this rewind
                // archived: it becomes the branch's run, with its batch in flight, and the live
                // history starts a new one. What arrived of that batch is never matched against
                // the rows logged again after the rewind.
                let mut moved = std::mem::take(&mut state.live);
                // It stands for the history as it was: rows it never got up to the rewind's step
                // (a batch that failed on its way) are still the live history's, unless a later
                // rewind went below them too.
                let unchanged = new_branches[index + 1..].iter().map(|later| later.rewound_to).min();
                let through = unchanged.map_or(branch.rewound_to, |later| later.min(branch.rewound_to));
                if moved.pushed_through.is_none_or(|pushed| pushed < through) {
                    moved.fill_through = Some(through);
                }
                state.branches.insert(branch.id, moved);
            }
        }
        state.branches_seen = u32::try_from(branches.len()).unwrap_or(u32::MAX);
        self.save(id, &state)?;

        let params = params_of(&info.config);
        let mut tags = tags_of(&info, attempts.len());
        let status = status_of(info.state);
        let end = (!info.state.is_live()).then(|| ms(info.updated_at));
        let name = info.name.clone().unwrap_or_else(|| id.to_string());
        let live = Job {
            name: &name,
            experiment: &experiment,
            params: &params,
            tags: &tags,
            status,
            end,
            start: ms(info.created_at),
        };
        let mut target = std::mem::take(&mut state.live);
        let result = self.push(&reader, &live, &mut target, id, &mut state, None);
        state.live = target;
        result?;

        if !self.args.live_only {
            for branch in &branches {
                tags.retain(|(key, _)| !key.starts_with("runstore.branch") && key != "runstore.rewound_to");
                tags.push(("runstore.branch_of".into(), id.to_string()));
                tags.push(("runstore.branch".into(), branch.id.to_string()));
                tags.push(("runstore.rewound_to".into(), branch.rewound_to.to_string()));
                let branch_name = format!("{name} (branch {})", branch.id);
                let job = Job {
                    name: &branch_name,
                    experiment: &experiment,
                    params: &params,
                    tags: &tags,
                    status: "FINISHED",
                    end: Some(ms(branch.created_at)),
                    start: ms(info.created_at),
                };
                let mut target = state.branches.remove(&branch.id).unwrap_or_default();
                let result = self.push(&reader, &job, &mut target, id, &mut state, Some(branch.id));
                state.branches.insert(branch.id, target);
                result?;
            }
        }
        self.save(id, &state)?;
        self.totals.runs += 1;
        Ok(())
    }

    /// Brings one MLflow run up to date with one history of run `id`.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        reader: &RunSnapshot,
        job: &Job<'_>,
        target: &mut Target,
        id: &str,
        state: &mut State,
        branch: Option<u32>,
    ) -> Result<(), Failure> {
        let save = |syncer: &Self, state: &mut State, target: &Target| {
            match branch {
                None => state.live = target.clone(),
                Some(branch) => {
                    state.branches.insert(branch, target.clone());
                }
            }
            syncer.save(id, state)
        };
        let run = match &target.mlflow_run {
            Some(run) => run.clone(),
            None => {
                let run = self.client.create_run(job.experiment, job.name, job.start, job.tags)?;
                self.totals.created += 1;
                target.mlflow_run = Some(run.clone());
                save(self, state, target)?;
                run
            }
        };
        // Params: MLflow keeps the first value of a key for good.
        let new: Vec<(String, String)> = job
            .params
            .iter()
            .filter(|(key, value)| match target.params.get(key.as_str()) {
                Some(pushed) if pushed != value => {
                    output::warn(&format!(
                        "run {id}: config {key:?} changed to {value:?}, but MLflow params cannot change: it stays {pushed:?} there"
                    ));
                    false
                }
                Some(_) => false,
                None => true,
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        for chunk in new.chunks(mlflow::MAX_PARAMS) {
            self.client.log_batch(&run, &[], chunk, &[])?;
            target.params.extend(chunk.iter().cloned());
            save(self, state, target)?;
        }
        for chunk in job.tags.chunks(mlflow::MAX_TAGS) {
            self.client.log_batch(&run, &[], &[], chunk)?;
        }

        // Points of a batch that may have arrived before a crash are not sent again.
        let mut arrived: HashSet<(String, u64)> = HashSet::new();
        if let Some((from, to)) = target.inflight {
            for metric in reader.metrics()?.into_iter().filter(|name| !crate::system::is_system(name)) {
                for step in self.client.steps_logged(&run, &metric, from, to)? {
                    arrived.insert((metric.clone(), step));
                }
            }
        }
        if let Some(through) = target.fill_through.filter(|_| branch.is_some()) {
            let from = target.pushed_through.map_or(0, |step| step.saturating_add(1));
            if from <= through {
                let before = reader.history(from..=through)?;
                self.send_rows(before, &run, target, &arrived, |syncer, target| save(syncer, state, target))?;
            }
            target.fill_through = None;
            save(self, state, target)?;
        }
        let from = target.pushed_through.map_or(0, |step| step.saturating_add(1));
        let history = match branch {
            None => reader.history(from..)?,
            Some(branch) => reader.branch_history(branch, from..)?,
        };
        self.send_rows(history, &run, target, &arrived, |syncer, target| save(syncer, state, target))?;
        if branch.is_none() {
            // System samples belong to the run, not to a history: the live one's MLflow run has them.
            self.send_system(reader, &run, target, |syncer, target| save(syncer, state, target))?;
        }
        self.client.update_run(&run, job.status, job.end)
    }

    /// Sends the system samples not sent yet, in batches of at most [`mlflow::MAX_METRICS`];
    /// first asks MLflow which samples of the batch in flight arrived, and skips those.
    fn send_system(
        &mut self,
        reader: &RunSnapshot,
        run: &str,
        target: &mut Target,
        mut save: impl FnMut(&Self, &mut Target) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut arrived: HashSet<(String, u64)> = HashSet::new();
        for (metric, &(from, to)) in &target.system_inflight {
            for step in self.client.steps_logged(run, metric, from, to)? {
                arrived.insert((metric.clone(), step));
            }
        }
        let mut batch: Vec<(String, f64, u64, u64)> = Vec::with_capacity(mlflow::MAX_METRICS);
        for metric in crate::system::names(reader)? {
            let sent = target.system_sent.get(&metric).copied().unwrap_or(0);
            let samples = reader.system(&metric, ..)?;
            for (index, (time, value)) in (0u64..).zip(samples).skip(usize::try_from(sent).unwrap_or(usize::MAX)) {
                if arrived.contains(&(metric.clone(), index)) {
                    continue;
                }
                batch.push((metric.clone(), value, ms(time), index));
                if batch.len() == mlflow::MAX_METRICS {
                    self.send_system_batch(run, &mut batch, target, &mut save)?;
                }
            }
        }
        if !batch.is_empty() {
            self.send_system_batch(run, &mut batch, target, &mut save)?;
        }
        // Whatever was in flight has arrived now, or was sent again.
        if !target.system_inflight.is_empty() {
            for (metric, (_, last)) in std::mem::take(&mut target.system_inflight) {
                let sent = target.system_sent.entry(metric).or_insert(0);
                *sent = (*sent).max(last + 1);
            }
            save(self, target)?;
        }
        Ok(())
    }

    /// Sends one batch of system samples, in flight in the state until MLflow has them.
    fn send_system_batch(
        &mut self,
        run: &str,
        batch: &mut Vec<(String, f64, u64, u64)>,
        target: &mut Target,
        save: &mut impl FnMut(&Self, &mut Target) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut ranges: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (metric, _, _, index) in batch.iter() {
            let range = ranges.entry(metric.clone()).or_insert((*index, *index));
            range.0 = range.0.min(*index);
            range.1 = range.1.max(*index);
        }
        // A range still in flight from an earlier sync stays in flight until this one is out.
        for (metric, (first, last)) in &ranges {
            let range = target.system_inflight.entry(metric.clone()).or_insert((*first, *last));
            *range = (range.0.min(*first), range.1.max(*last));
        }
        save(self, target)?;
        self.post(run, batch)?;
        self.totals.samples += batch.len() as u64;
        batch.clear();
        for (metric, (_, last)) in ranges {
            let sent = target.system_sent.entry(metric.clone()).or_insert(0);
            *sent = (*sent).max(last + 1);
            if target.system_inflight.get(&metric).is_some_and(|&(_, until)| until <= last) {
                target.system_inflight.remove(&metric);
            }
        }
        save(self, target)?;
        Ok(())
    }

    /// Sends the rows of `history` in batches of at most [`mlflow::MAX_METRICS`] points, cut
    /// at row boundaries (a row of more points is split over several batches).
    fn send_rows(
        &mut self,
        mut history: History,
        run: &str,
        target: &mut Target,
        arrived: &HashSet<(String, u64)>,
        mut save: impl FnMut(&Self, &mut Target) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut batch: Vec<(String, f64, u64, u64)> = Vec::with_capacity(mlflow::MAX_METRICS);
        let mut rows_in_batch = 0u64;
        let mut first_step = None;
        while let Some(row) = history.next_row()? {
            // Each point has the time its row was logged.
            let timestamp = ms(row.time());
            let points: Vec<(&str, f64)> =
                row.iter().filter(|(name, _)| !arrived.contains(&((*name).to_string(), row.step()))).collect();
            if batch.len() + points.len() > mlflow::MAX_METRICS && !batch.is_empty() {
                self.send_batch(run, &mut batch, target, first_step.take(), rows_in_batch, &mut save)?;
                rows_in_batch = 0;
            }
            first_step.get_or_insert(row.step());
            for (name, value) in points {
                batch.push((name.to_string(), value, timestamp, row.step()));
                if batch.len() == mlflow::MAX_METRICS {
                    // One row of more points than a batch holds: send its points in parts, in
                    // flight until the whole row is out.
                    target.inflight = Some((first_step.unwrap_or(row.step()), row.step()));
                    save(self, target)?;
                    self.post(run, &batch)?;
                    self.totals.points += batch.len() as u64;
                    batch.clear();
                }
            }
            rows_in_batch += 1;
            let step = row.step();
            if batch.is_empty() {
                target.pushed_through = Some(step);
                target.inflight = None;
                save(self, target)?;
                self.totals.rows += rows_in_batch;
                rows_in_batch = 0;
                first_step = None;
            } else {
                target.inflight = Some((first_step.unwrap_or(step), step));
            }
        }
        if !batch.is_empty() {
            self.send_batch(run, &mut batch, target, first_step, rows_in_batch, &mut save)?;
        }
        Ok(())
    }

    fn send_batch(
        &mut self,
        run: &str,
        batch: &mut Vec<(String, f64, u64, u64)>,
        target: &mut Target,
        first_step: Option<u64>,
        rows: u64,
        save: &mut impl FnMut(&Self, &mut Target) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let last_step = batch.last().map_or(0, |point| point.3);
        target.inflight = Some((first_step.unwrap_or(last_step), last_step));
        save(self, target)?;
        self.post(run, batch)?;
        self.totals.points += batch.len() as u64;
        batch.clear();
        target.pushed_through = Some(last_step);
        target.inflight = None;
        save(self, target)?;
        self.totals.rows += rows;
        if let Some(bar) = self.bar {
            bar.set_position(self.totals.rows);
        }
        Ok(())
    }

    fn post(&mut self, run: &str, batch: &[(String, f64, u64, u64)]) -> Result<(), Failure> {
        let points: Vec<Point<'_>> = batch
            .iter()
            .map(|(key, value, timestamp_ms, step)| Point {
                key,
                value: *value,
                timestamp_ms: *timestamp_ms,
                step: *step,
            })
            .collect();
        self.client.log_batch(run, &points, &[], &[])?;
        Ok(())
    }
}

/// One MLflow run to bring up to date.
struct Job<'a> {
    name: &'a str,
    experiment: &'a str,
    params: &'a [(String, String)],
    tags: &'a [(String, String)],
    status: &'static str,
    end: Option<u64>,
    start: u64,
}

/// Config keys flattened with dots, values as text, cut to MLflow's limits with a warning.
fn params_of(config: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (key, value) in map {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&key, value, out);
                }
            }
            serde_json::Value::String(text) => out.push((prefix.to_string(), text.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut params = Vec::new();
    for (key, value) in config {
        walk(key, value, &mut params);
    }
    for (key, value) in &mut params {
        if value.chars().count() > mlflow::MAX_PARAM_VALUE {
            output::warn(&format!(
                "config {key:?} is longer than MLflow's {} characters: cut",
                mlflow::MAX_PARAM_VALUE
            ));
            *value = mlflow::cut(value, mlflow::MAX_PARAM_VALUE);
        }
        if key.chars().count() > mlflow::MAX_KEY {
            output::warn(&format!("config key {key:?} is longer than MLflow's {} characters: cut", mlflow::MAX_KEY));
            *key = mlflow::cut(key, mlflow::MAX_KEY);
        }
    }
    params
}

fn tags_of(info: &RunInfo, attempts: usize) -> Vec<(String, String)> {
    let mut tags = vec![
        ("runstore.run_id".to_string(), info.id.clone()),
        ("runstore.state".to_string(), info.state.to_string()),
        ("runstore.attempts".to_string(), attempts.to_string()),
        ("runstore.next_step".to_string(), info.next_step.to_string()),
    ];
    if let Some(project) = &info.project {
        tags.push(("runstore.project".into(), project.clone()));
    }
    if let Some((parent, step)) = &info.forked_from {
        tags.push(("runstore.forked_from".into(), format!("{parent}@{step}")));
    }
    if let Some(notes) = &info.notes {
        tags.push(("mlflow.note.content".into(), mlflow::cut(notes, mlflow::MAX_TAG_VALUE)));
    }
    for tag in &info.tags {
        tags.push((mlflow::cut(tag, mlflow::MAX_KEY), "true".into()));
    }
    tags
}

fn status_of(state: RunState) -> &'static str {
    match state {
        RunState::Finished => "FINISHED",
        RunState::Failed => "FAILED",
        RunState::Crashed | RunState::Preempted => "KILLED",
        _ => "RUNNING",
    }
}

fn ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// FNV-1a of the server URL: names the state directory of that server.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_flattens_to_dotted_params() {
        let config =
            serde_json::json!({"lr": 0.1, "model": {"depth": 12, "act": "gelu"}, "tags": [1, 2], "none": null});
        let serde_json::Value::Object(config) = config else { unreachable!() };
        let mut params = params_of(&config);
        params.sort();
        assert_eq!(
            params,
            [("lr", "0.1"), ("model.act", "gelu"), ("model.depth", "12"), ("none", "null"), ("tags", "[1,2]")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}
