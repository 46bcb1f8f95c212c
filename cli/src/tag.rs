//! `runstore tag`: add and remove tags of a run after its creation.

use runstore::Store;

use crate::exit::Failure;
use crate::output;

/// Add (+TAG) and remove (-TAG) tags of a run.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Both in one transaction; prints the run's tags after. Works in any state but
live (a process writing the run: exit 5).

Examples:
  runstore tag lr-0.01 +keep -debug
  runstore tag lr-0.01 +best-so-far")]
pub struct Args {
    /// The run id.
    id: String,
    /// +TAG to add, -TAG to remove.
    #[arg(value_name = "+TAG|-TAG", required = true, num_args = 1.., allow_hyphen_values = true)]
    changes: Vec<String>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let mut add = Vec::new();
    let mut remove = Vec::new();
    for change in &args.changes {
        match (change.strip_prefix('+'), change.strip_prefix('-')) {
            (Some(tag), _) => add.push(tag),
            (_, Some(tag)) => remove.push(tag),
            _ => {
                return Err(Failure::input(format!(
                    "{change:?} says neither +TAG nor -TAG: write +{change} to add it or -{change} to remove it"
                )));
            }
        }
    }
    let tags = store.edit_tags(&args.id, &add, &remove)?;
    if tags.is_empty() {
        output::stdout_line(&format!("run {} has no tags", args.id))
    } else {
        output::stdout_line(&format!("run {} tags: {}", args.id, tags.join(", ")))
    }
}
