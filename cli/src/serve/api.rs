//! The JSON answers about one run: its detail (attempts, branches, metrics), a metric's chart
//! data downsampled to the chart's width, a system metric's samples against time, and the small
//! status the page polls for live runs.

use runstore::{Error, RunSnapshot, Store, validate_metric_name, validate_run_id};
use serde::Serialize;

use super::catalog::{RunRow, millis};
use super::http::{Reply, Request};
use super::summary::{Epoch, Key, Summaries};
use crate::downsample;

/// The widest chart the server downsamples for, in columns.
pub const MAX_WIDTH: u64 = 8192;
/// The width used when the page does not say.
const DEFAULT_WIDTH: u64 = 1000;
/// Runs one live poll may ask about.
const MAX_LIVE_IDS: usize = 200;

/// The reply for a library error: 400 for bad input, 404 for what does not exist, 500 else.
pub fn error_reply(error: &Error) -> Reply {
    let status = match error {
        Error::InvalidRunId { .. } | Error::InvalidMetricName { .. } => 400,
        Error::RunNotFound { .. } | Error::BranchNotFound { .. } => 404,
        _ => 500,
    };
    Reply::error(status, &error.to_string())
}

/// Opens run `id`, validated before anything names a file, as one snapshot: everything an
/// answer says of the run is of one commit.
fn open(store: &Store, id: &str) -> Result<RunSnapshot, Reply> {
    validate_run_id(id).map_err(|error| error_reply(&error))?;
    store.open_run(id).and_then(|reader| reader.snapshot()).map_err(|error| error_reply(&error))
}

#[derive(Serialize)]
struct AttemptJson {
    number: u32,
    started_at: u64,
    ended_at: Option<u64>,
    host: String,
    pid: u32,
    first_step: u64,
    last_step: Option<u64>,
    /// `None` while the attempt is live.
    outcome: Option<&'static str>,
    exit_code: Option<i32>,
}

#[derive(Serialize)]
struct BranchJson {
    id: u32,
    rewound_to: u64,
    first_step: u64,
    last_step: u64,
    rows: u64,
    created_at: u64,
    by_attempt: u32,
}

#[derive(Serialize)]
struct CheckpointJson {
    step: u64,
    path: String,
    exists: bool,
    /// Archived by a rewind below its step: never a resume point again.
    branch: Option<u32>,
}

#[derive(Serialize)]
struct Detail {
    run: RunRow,
    /// The step metrics.
    metrics: Vec<String>,
    /// The system metrics (`system/...`): sampled by time, drawn against it.
    system: Vec<String>,
    attempts: Vec<AttemptJson>,
    branches: Vec<BranchJson>,
    /// Its recorded checkpoints, in the order recorded.
    checkpoints: Vec<CheckpointJson>,
    /// The process writing the run now, as `pid N on HOST since TIME`.
    holder: Option<String>,
}

/// `GET /api/runs/{id}`.
pub fn detail(store: &Store, id: &str) -> Reply {
    let reader = match open(store, id) {
        Ok(reader) => reader,
        Err(reply) => return reply,
    };
    let read = || -> runstore::Result<Detail> {
        let attempts = reader.attempts()?;
        let branches = reader.branches()?;
        let (system, metrics) = reader.metrics()?.into_iter().partition(|name| crate::system::is_system(name));
        Ok(Detail {
            run: RunRow::from_info(reader.info()?),
            metrics,
            system,
            attempts: attempts
                .into_iter()
                .map(|attempt| AttemptJson {
                    number: attempt.number,
                    started_at: millis(attempt.started_at),
                    ended_at: attempt.ended_at.map(millis),
                    host: attempt.host,
                    pid: attempt.pid,
                    first_step: attempt.first_step,
                    last_step: attempt.last_step,
                    outcome: attempt.outcome.map(runstore::RunState::as_str),
                    exit_code: attempt.exit_code,
                })
                .collect(),
            branches: branches
                .into_iter()
                .map(|branch| BranchJson {
                    id: branch.id,
                    rewound_to: branch.rewound_to,
                    first_step: branch.first_step,
                    last_step: branch.last_step,
                    rows: branch.rows,
                    created_at: millis(branch.created_at),
                    by_attempt: branch.by_attempt,
                })
                .collect(),
            checkpoints: reader
                .checkpoints()?
                .into_iter()
                .map(|checkpoint| CheckpointJson {
                    step: checkpoint.step,
                    path: checkpoint.path.display().to_string(),
                    exists: checkpoint.exists,
                    branch: checkpoint.branch,
                })
                .collect(),
            holder: reader.holder().map(|holder| holder.to_string()),
        })
    };
    match read() {
        Ok(detail) => Reply::json(&detail),
        Err(error) => error_reply(&error),
    }
}

/// Points as columns, the way the chart takes them; `x` (seconds) only when the x axis is
/// runtime or time.
#[derive(Serialize, Default)]
struct Columns {
    steps: Vec<u64>,
    values: Vec<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<Vec<f64>>,
}

impl Columns {
    fn from_points(points: Vec<(u64, f64)>) -> Columns {
        let (steps, values) = points.into_iter().unzip();
        Columns { steps, values, x: None }
    }

    fn from_timed(points: Vec<((f64, u64), f64)>) -> Columns {
        let mut columns = Columns { x: Some(Vec::with_capacity(points.len())), ..Columns::default() };
        for ((x, step), value) in points {
            columns.x.get_or_insert_with(Vec::new).push(x);
            columns.steps.push(step);
            columns.values.push(value);
        }
        columns
    }
}

/// What the chart's x axis is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XAxis {
    Step,
    /// Seconds of running time, dead time between attempts not counted.
    Runtime,
    /// Seconds since the Unix epoch, when the row was logged.
    Time,
}

impl XAxis {
    fn of(row: &runstore::RowRef<'_>, axis: XAxis) -> f64 {
        match axis {
            XAxis::Runtime => row.runtime().as_secs_f64(),
            _ => row.time().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64()),
        }
    }
}

/// The live curve and the archived ones of `metric` against runtime or time, each reduced to
/// `width` columns of x over the x range of all of them (read twice: the range, then the
/// points). Not summarised between requests, unlike the step axis.
fn timed(
    reader: &RunSnapshot,
    metric: &str,
    steps: std::ops::RangeInclusive<u64>,
    branches: &[runstore::Branch],
    width: u64,
    axis: XAxis,
) -> runstore::Result<(Columns, Vec<Columns>)> {
    let open = |branch: Option<u32>| match branch {
        None => reader.history_of(&[metric], steps.clone()),
        Some(id) => reader.branch_history(id, steps.clone()),
    };
    let which: Vec<Option<u32>> = std::iter::once(None).chain(branches.iter().map(|b| Some(b.id))).collect();
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for &branch in &which {
        let mut history = open(branch)?;
        while let Some(row) = history.next_row()? {
            if row.get(metric).is_some() {
                let x = XAxis::of(&row, axis);
                low = low.min(x);
                high = high.max(x);
            }
        }
    }
    let mut curves = Vec::new();
    for &branch in &which {
        let mut history = open(branch)?;
        let mut reducer = downsample::ByColumn::default();
        while let Some(row) = history.next_row()? {
            if let Some(value) = row.get(metric) {
                let x = XAxis::of(&row, axis);
                reducer.push(downsample::x_column(x, low, high, width), (x, row.step()), value);
            }
        }
        curves.push(Columns::from_timed(reducer.finish()));
    }
    let live = if curves.is_empty() { Columns::from_timed(Vec::new()) } else { curves.remove(0) };
    Ok((live, curves))
}

#[derive(Serialize)]
struct ArchivedJson {
    id: u32,
    rewound_to: u64,
    #[serde(flatten)]
    points: Columns,
}

#[derive(Serialize)]
struct SeriesJson {
    run: String,
    metric: String,
    /// The step range the columns divide: the requested one, cut to the run's history.
    first: Option<u64>,
    last: Option<u64>,
    #[serde(flatten)]
    points: Columns,
    branches: Vec<ArchivedJson>,
}

/// The `metric` parameter of a request for a step metric's curve: given, valid, and not a system
/// metric's (those have no steps).
fn step_metric<'r>(request: &'r Request<'_>) -> Result<&'r str, Reply> {
    let Some(metric) = request.param("metric") else {
        return Err(Reply::error(400, "the metric parameter is missing"));
    };
    validate_metric_name(metric).map_err(|error| error_reply(&error))?;
    if crate::system::is_system(metric) {
        let text = format!("{metric:?} is a system metric: its samples are at /api/runs/ID/system");
        return Err(Reply::error(400, &text));
    }
    Ok(metric)
}

/// `GET /api/runs/{id}/series?metric=NAME[&width=N][&from=STEP][&to=STEP][&branches=0][&x=AXIS]`:
/// the metric's live curve and its archived branches, each reduced to the first, lowest,
/// highest and last point of `width` columns of the x axis: `step` (the default; a curve of many
/// chunks comes from their summaries, see [`step_curve`]; other whole curves from `summaries`),
/// `runtime` or `time` (then each curve has an `x` column, seconds).
pub fn series(store: &Store, summaries: &Summaries, id: &str, request: &Request) -> Reply {
    let metric = match step_metric(request) {
        Ok(metric) => metric,
        Err(reply) => return reply,
    };
    let number = |key: &'static str| request.param(key).map(|text| text.parse::<u64>().map_err(|_| key));
    let (width, from, to) = match (number("width"), number("from"), number("to")) {
        (Some(Err(key)), ..) | (_, Some(Err(key)), _) | (.., Some(Err(key))) => {
            return Reply::error(400, &format!("the {key} parameter must be a whole number"));
        }
        (width, from, to) => (
            width.and_then(Result::ok).unwrap_or(DEFAULT_WIDTH).clamp(1, MAX_WIDTH),
            from.and_then(Result::ok).unwrap_or(0),
            to.and_then(Result::ok).unwrap_or(u64::MAX),
        ),
    };
    let with_branches = request.param("branches") != Some("0");
    let axis = match request.param("x") {
        None | Some("step") => XAxis::Step,
        Some("runtime") => XAxis::Runtime,
        Some("time") => XAxis::Time,
        Some(other) => return Reply::error(400, &format!("the x parameter is step, runtime or time, not {other:?}")),
    };
    let reader = match open(store, id) {
        Ok(reader) => reader,
        Err(reply) => return reply,
    };
    let read = || -> runstore::Result<Option<SeriesJson>> {
        if !reader.metrics()?.iter().any(|name| name == metric) {
            return Ok(None);
        }
        // The columns divide the rows that exist in range: from the first row at or after
        // `from` to the last step at or before `to`, as of now.
        let mut history = reader.history(from..=to)?;
        let first = history.next_row()?.map(|row| row.step());
        drop(history);
        let info = reader.info()?;
        let last = info.last_step.map(|last| last.min(to));
        let whole = from == 0 && to == u64::MAX;
        let epoch = Epoch { created_at: millis(info.created_at), branches: info.branches };
        let key = |branch| (id.to_string(), metric.to_string(), branch);
        let columns = usize::try_from(width).unwrap_or(usize::MAX);
        if axis != XAxis::Step {
            let branches: Vec<runstore::Branch> = if with_branches {
                reader.branches()?.into_iter().filter(|b| b.first_step <= to && b.last_step >= from).collect()
            } else {
                Vec::new()
            };
            let (points, curves) = timed(&reader, metric, from..=to, &branches, width, axis)?;
            let branches = branches
                .iter()
                .zip(curves)
                .map(|(branch, points)| ArchivedJson { id: branch.id, rewound_to: branch.rewound_to, points })
                .collect();
            return Ok(Some(SeriesJson {
                run: id.to_string(),
                metric: metric.to_string(),
                first,
                last,
                points,
                branches,
            }));
        }
        let cached = |branch| whole.then(|| (summaries, key(branch), epoch));
        let points = match (first, last) {
            (Some(first), Some(last)) if first <= last => {
                let envelope = reader.summary_envelope(metric, first..=last, columns)?;
                step_curve(envelope, cached(None), (first, last), width, |low, high| reader.series(metric, low..=high))?
            }
            _ => Vec::new(),
        };
        let points = Columns::from_points(points);
        let mut branches = Vec::new();
        if with_branches {
            for branch in reader.branches()? {
                let (low, high) = (branch.first_step.max(from), branch.last_step.min(to));
                if low <= high {
                    let envelope = reader.branch_summary_envelope(branch.id, metric, low..=high, columns)?;
                    let series = |low, high| reader.branch_series(branch.id, metric, low..=high);
                    let points = step_curve(envelope, cached(Some(branch.id)), (low, high), width, series)?;
                    branches.push(ArchivedJson {
                        id: branch.id,
                        rewound_to: branch.rewound_to,
                        points: Columns::from_points(points),
                    });
                }
            }
        }
        Ok(Some(SeriesJson { run: id.to_string(), metric: metric.to_string(), first, last, points, branches }))
    };
    match read() {
        Ok(Some(series)) => Reply::json(&series),
        Ok(None) => Reply::error(404, &format!("run {id:?} has no metric {metric:?}")),
        Err(error) => error_reply(&error),
    }
}

/// A curve over steps `low..=high` in `width` columns: from its chunk summaries when the range
/// holds many chunks (`envelope`), else from its points, through the cache of whole curves when
/// `cached` (`series(low, high)` streams the points).
fn step_curve<I>(
    envelope: Option<runstore::Envelope>,
    cached: Option<(&Summaries, Key, Epoch)>,
    (low, high): (u64, u64),
    width: u64,
    series: impl Fn(u64, u64) -> runstore::Result<I>,
) -> runstore::Result<Vec<(u64, f64)>>
where
    I: Iterator<Item = runstore::Result<(u64, f64)>>,
{
    match (envelope, cached) {
        (Some(envelope), _) => downsample::from_envelope(&envelope, series),
        (None, Some((summaries, key, epoch))) => {
            summaries.whole(key, epoch, (low, high), width, |from| series(from, high))
        }
        (None, None) => downsample::min_max(series(low, high)?, low, high, width),
    }
}

#[derive(Serialize)]
struct SystemJson {
    run: String,
    metric: String,
    /// How many samples the series has; the columns keep some of them.
    samples: usize,
    /// Seconds since the Unix epoch, when each kept sample was taken.
    x: Vec<f64>,
    values: Vec<f64>,
}

/// `GET /api/runs/{id}/system?metric=system/NAME[&width=N]`: a system metric's samples against
/// time (seconds since the Unix epoch), reduced to the first, lowest, highest and last sample of
/// `width` columns of its time span.
pub fn system(store: &Store, id: &str, request: &Request) -> Reply {
    let Some(metric) = request.param("metric") else {
        return Reply::error(400, "the metric parameter is missing");
    };
    if !crate::system::is_system(metric) {
        return Reply::error(400, &format!("{metric:?} is not a system metric: their names start with system/"));
    }
    let width = match request.param("width").map(str::parse::<u64>) {
        None => DEFAULT_WIDTH,
        Some(Ok(width)) => width.clamp(1, MAX_WIDTH),
        Some(Err(_)) => return Reply::error(400, "the width parameter must be a whole number"),
    };
    let reader = match open(store, id) {
        Ok(reader) => reader,
        Err(reply) => return reply,
    };
    let read = || -> runstore::Result<Option<SystemJson>> {
        if !reader.metrics()?.iter().any(|name| name == metric) {
            return Ok(None);
        }
        let seconds =
            |time: std::time::SystemTime| time.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let samples = reader.system(metric, ..)?;
        let (low, high) = match (samples.first(), samples.last()) {
            (Some(&(first, _)), Some(&(last, _))) => (seconds(first), seconds(last)),
            _ => (0.0, 0.0),
        };
        let mut reducer = downsample::ByColumn::default();
        for &(time, value) in &samples {
            let x = seconds(time);
            reducer.push(downsample::x_column(x, low, high, width), x, value);
        }
        let (x, values) = reducer.finish().into_iter().unzip();
        Ok(Some(SystemJson { run: id.to_string(), metric: metric.to_string(), samples: samples.len(), x, values }))
    };
    match read() {
        Ok(Some(series)) => Reply::json(&series),
        Ok(None) => Reply::error(404, &format!("run {id:?} has no system metric {metric:?}")),
        Err(error) => error_reply(&error),
    }
}

#[derive(Serialize)]
struct LiveJson {
    state: String,
    live: bool,
    rows: u64,
    last_step: Option<u64>,
    updated_at: u64,
    attempts: u32,
    branches: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /api/live?ids=a,b`: what changes while a run is written, for the runs the page shows;
/// the page fetches more when a run's rows, state or branches change.
pub fn live(store: &Store, request: &Request) -> Reply {
    let ids: Vec<&str> = request.param("ids").map(|ids| ids.split(',').collect()).unwrap_or_default();
    if ids.len() > MAX_LIVE_IDS {
        return Reply::error(400, &format!("at most {MAX_LIVE_IDS} runs per request"));
    }
    let mut runs = serde_json::Map::new();
    for id in ids {
        if let Err(error) = validate_run_id(id) {
            return error_reply(&error);
        }
        let row = match store.open_run(id).and_then(|reader| reader.info()) {
            Ok(info) => RunRow::from_info(info),
            Err(Error::RunNotFound { .. }) => continue,
            Err(error) => RunRow::damaged(id, &error),
        };
        let status = LiveJson {
            live: row.live,
            rows: row.rows,
            last_step: row.last_step,
            updated_at: row.updated_at,
            attempts: row.attempts,
            branches: row.branches,
            error: row.error,
            state: row.state,
        };
        runs.insert(id.to_string(), serde_json::to_value(status).unwrap_or_default());
    }
    Reply::json(&serde_json::json!({ "runs": runs }))
}
