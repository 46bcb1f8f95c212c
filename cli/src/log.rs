//! `runstore log`: append one row to a run and end that attempt, keeping the run's outcome.

use runstore::{ENV_RESUME, Error, Resume, RunOptions, Store};

use crate::exit::Failure;
use crate::output;

/// Append one row to a run and end that attempt (evaluation scripts).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The id may be left out when RUNSTORE_RUN_ID names the run; --resume defaults to
RUNSTORE_RESUME, then must. The row goes at the run's next step, or at --step N
(N may be the last logged step: the values merge into that row). VALUE is a
number: 0.93, 1e-4, nan, inf, -inf.

The run keeps its outcome: a finished run stays finished, a failed one failed, a
preempted one preempted; a crashed run reads failed afterwards (its dead attempt
is closed). A run that log creates (--resume allow or never) ends finished.

Examples:
  runstore log \"$RUN_ID\" eval/acc=0.93 eval/loss=0.21
  RUNSTORE_RUN_ID=resnet-7 runstore log eval/acc=0.93
  runstore log resnet-7 --step 12000 test/acc=0.91
  runstore log new-run --resume allow score=1")]
pub struct Args {
    #[arg(value_name = "[ID] KEY=VALUE", required = true, num_args = 1.., help = "The run id (or RUNSTORE_RUN_ID), then KEY=VALUE pairs")]
    words: Vec<String>,
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        hide_possible_values = true,
        help = "must, allow, never [default: $RUNSTORE_RESUME or must]"
    )]
    resume: Option<Policy>,
    /// The step of the row; default: the run's next step.
    #[arg(long, value_name = "N")]
    step: Option<u64>,
}

/// The resume policies `log` accepts on its command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Policy {
    /// Append to an existing run; it must exist.
    Must,
    /// Append to the run, creating it if it does not exist.
    Allow,
    /// Create the run; it must not exist.
    Never,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let (id, pairs) = split_words(&args.words)?;
    let metrics = pairs.iter().map(|pair| parse_pair(pair)).collect::<Result<Vec<_>, _>>()?;
    if let Some(duplicate) = metrics
        .iter()
        .enumerate()
        .find_map(|(i, (name, _))| metrics[..i].iter().any(|(earlier, _)| earlier == name).then_some(name))
    {
        return Err(Failure::input(format!("metric {duplicate:?} is given twice: give each KEY once")));
    }
    let mut options = RunOptions::new();
    if let Some(id) = id {
        options = options.id(id);
    }
    let policy = match args.resume {
        Some(Policy::Allow) => Some(Resume::Allow),
        Some(Policy::Never) => Some(Resume::Never),
        // RUNSTORE_RESUME applies when set (the library reads and checks it), else `must`.
        None if std::env::var(ENV_RESUME).is_ok_and(|value| !value.trim().is_empty()) => None,
        Some(Policy::Must) | None => Some(Resume::Must),
    };
    if let Some(policy) = policy {
        options = options.resume(policy);
    }
    let mut run = store.init(options).map_err(|error| {
        Failure::from(error).explain(|error| match error {
            Error::RunNotFound { id } => {
                Some(format!("run {id:?} does not exist: check the id, or pass --resume allow to create it"))
            }
            Error::RunExists { id } => {
                Some(format!("run {id:?} already exists: pass --resume must (or allow) to log to it"))
            }
            _ => None,
        })
    })?;
    for warning in run.warnings() {
        output::warn(&format!("warning: {warning}"));
    }
    let step = args.step.unwrap_or_else(|| run.step());
    let logged = run.log_at(step, metrics.iter().map(|(name, value)| (name.as_str(), *value)));
    let id = run.id().to_string();
    // End the attempt whatever happened, so that a refused row leaves the run as it was.
    let ended = run.end_keeping_state();
    logged.map_err(|error| {
        Failure::from(error).explain(|error| match error {
            Error::StepRegression { id, requested, next, last } => Some(match last {
                Some(last) => format!(
                    "--step {requested} is behind run {id:?}, whose last logged step is {last}: give --step {last} \
                     (merged into that row) or {next} or later, or leave --step out to log at {next}"
                ),
                None => format!("--step {requested} is behind run {id:?}: give {next} or later, or leave --step out"),
            }),
            _ => None,
        })
    })?;
    ended?;
    output::stdout_line(&format!("logged step {step} to run {id}"))
}

/// The run id (a first word without `=`: ids cannot hold one) and the `KEY=VALUE` words.
fn split_words(words: &[String]) -> Result<(Option<&str>, &[String]), Failure> {
    let (id, pairs) = match words.split_first() {
        Some((first, rest)) if !first.contains('=') => (Some(first.as_str()), rest),
        _ => (None, words),
    };
    if pairs.is_empty() {
        return Err(Failure::input("nothing to log: give one or more KEY=VALUE, as in `runstore log RUN loss=0.5`"));
    }
    Ok((id, pairs))
}

/// `name=value`, split at the last `=` (a metric name may hold one, a number cannot).
fn parse_pair(pair: &str) -> Result<(String, f64), Failure> {
    let Some((name, text)) = pair.rsplit_once('=') else {
        return Err(Failure::input(format!("{pair:?} is not KEY=VALUE: write it as, e.g., eval/acc=0.93")));
    };
    runstore::validate_metric_name(name)?;
    let value = text.trim().parse::<f64>().map_err(|_| {
        Failure::input(format!(
            "the value of {name:?} is {text:?}, not a number: write e.g. 0.93, 1e-4, nan, inf or -inf"
        ))
    })?;
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_at_the_last_equals_sign() {
        assert_eq!(parse_pair("a=b=1.5").unwrap(), ("a=b".to_string(), 1.5));
        assert!(parse_pair("loss=-inf").unwrap().1.is_infinite());
        assert!(parse_pair("loss=nan").unwrap().1.is_nan());
        assert!(parse_pair("loss").is_err());
        assert!(parse_pair("loss=fast").is_err());
        assert!(parse_pair("=1").is_err());
    }
}
