//! `runstore sweep`: fill a queue from a search space, as a grid or as seeded random draws.

use std::path::PathBuf;

use runstore::{MAX_SWEEP_ITEMS, SearchSpace, Store};

use crate::exit::Failure;
use crate::output;

/// Fill a queue from a search space: a grid, or random draws.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("space").required(true).args(["grid", "random"])))]
#[command(after_help = "\
SPACE, a JSON file, maps each parameter to a list of values or (--random) a
range:
  [v1, v2, ...]                       each value (grid); one, uniformly (random)
  {\"min\": a, \"max\": b}                a float, uniform in [a, b)
  {\"min\": a, \"max\": b, \"int\": true}   an integer, uniform in [a, b]
  {\"log_min\": a, \"log_max\": b}        a float, log-uniform in [a, b), 0 < a

--grid adds the cartesian product: parameters in name order, the last name
varying fastest. --random adds K draws from splitmix64 seeded with S (default:
a fresh seed, printed); the same space and seed give the same configs, and the
first K of a longer draw. Each item gets a generated run id.

Examples:
  runstore sweep sweep-1 --grid grid.json
  runstore sweep sweep-2 --random rand.json --count 20 --seed 7
  runstore agent sweep-1 -- ./train
where grid.json holds {\"lr\": [0.1, 0.01], \"batch\": [32, 64]} (4 configs) and
rand.json {\"lr\": {\"log_min\": 1e-5, \"log_max\": 0.01}, \"bs\": [32, 64]}.")]
pub struct Args {
    /// The queue to fill (created if needed; items are added at its end).
    #[arg(value_name = "NAME")]
    queue: String,
    /// Add every combination of the lists of values in SPACE.
    #[arg(long, value_name = "SPACE")]
    grid: Option<PathBuf>,
    /// Add --count random draws from SPACE.
    #[arg(long, value_name = "SPACE", requires = "count")]
    random: Option<PathBuf>,
    /// How many configs to draw (--random).
    #[arg(long, value_name = "K", requires = "random", value_parser = count_parser())]
    count: Option<usize>,
    /// The seed (--random); default: a fresh one, printed.
    #[arg(long, value_name = "S", requires = "random")]
    seed: Option<u64>,
}

fn count_parser() -> impl clap::builder::TypedValueParser<Value = usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=u64::try_from(MAX_SWEEP_ITEMS).unwrap_or(u64::MAX))
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let queue = store.queue(&args.queue)?;
    let (configs, how) = match (&args.grid, &args.random) {
        (Some(path), _) => {
            let configs = SearchSpace::read(path)?.grid()?;
            let how = format!("the grid of {}", path.display());
            (configs, how)
        }
        (None, Some(path)) => {
            let space = SearchSpace::read(path)?;
            let seed = args.seed.unwrap_or_else(fresh_seed);
            let count = args.count.unwrap_or(1);
            let how = format!("random draws from {}, seed {seed}", path.display());
            (space.random(count, seed), how)
        }
        (None, None) => return Err(Failure::input("give --grid SPACE.json or --random SPACE.json --count K")),
    };
    let items = queue.push_all(configs)?;
    output::stdout_line(&format!(
        "added {} to queue {} ({how})",
        output::count(items.len() as u64, "item", "items"),
        queue.name()
    ))
}

/// A seed from the clock and the process id, for a sweep that did not ask for one.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // The low 64 bits vary fastest; the pid separates two sweeps started at once.
    #[allow(clippy::cast_possible_truncation)]
    let low = nanos as u64;
    low ^ u64::from(std::process::id()).rotate_left(32)
}
