//! The resume policy engine: a pure function from the request and what exists to a decision.
//!
//! `Store::init` resolves the request (code, then environment), takes the run's lock, reads the
//! snapshot of the run the request names, and asks [`decide`]. Nothing here touches a file.

use crate::error::{Error, Result};
use crate::options::Resume;
use crate::state::RunState;

/// What `init` was asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    /// The explicit run id (code or `RUNSTORE_RUN_ID`).
    pub(crate) id: Option<&'a str>,
    pub(crate) policy: Option<Resume>,
    /// The run id that this working directory's auto pointer names, if any.
    pub(crate) pointer: Option<&'a str>,
}

impl<'a> Request<'a> {
    /// The run whose snapshot [`decide`] needs: the explicit id, else the auto pointer's run
    /// under `auto`. `None` means a new run with a generated id.
    pub(crate) fn target(&self) -> Option<&'a str> {
        match (self.id, self.policy) {
            (Some(id), _) => Some(id),
            (None, Some(Resume::Auto)) => self.pointer,
            (None, _) => None,
        }
    }
}

/// What the store knows about the target run, read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The state with `Crashed`/`Preempted` already derived (the caller holds the lock).
    pub(crate) state: RunState,
    pub(crate) next_step: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Create the target run, or a run with a generated id when there is no target.
    Create,
    /// Resume the target run; the next `log` uses `next_step`.
    Resume { next_step: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) action: Action,
    /// Whether this working directory's auto pointer should name the run afterwards.
    pub(crate) write_pointer: bool,
    /// Said to the user through `Run::warnings`.
    pub(crate) warning: Option<String>,
}

/// Decides what `init` does. `existing` is the snapshot of `request.target()`, `None` when
/// there is no target or no such run.
pub(crate) fn decide(request: &Request<'_>, existing: Option<&Snapshot>) -> Result<Decision> {
    let create = || Decision { action: Action::Create, write_pointer: false, warning: None };
    let resume = |snapshot: &Snapshot| Decision {
        action: Action::Resume { next_step: snapshot.next_step },
        write_pointer: false,
        warning: None,
    };
    let exists = |id: &str| Error::RunExists { id: id.to_string() };
    let missing = |id: &str| Error::RunNotFound { id: id.to_string() };
    match (request.id, request.policy) {
        // An explicit id without a policy must never overwrite or mix into a run: as `never`.
        (Some(id), None | Some(Resume::Never)) => existing.map_or_else(|| Ok(create()), |_| Err(exists(id))),
        (Some(id), Some(Resume::Must)) => existing.map(resume).ok_or_else(|| missing(id)),
        (Some(_), Some(Resume::Allow)) => Ok(existing.map_or_else(create, resume)),
        (Some(id), Some(Resume::Auto)) => {
            let mut decision = existing.map_or_else(create, resume);
            decision.write_pointer = true;
            decision.warning = request.pointer.filter(|pointer| *pointer != id).map(|pointer| {
                format!("the explicit run id {id:?} wins over run {pointer:?} left unfinished in this directory")
            });
            Ok(decision)
        }
        (None, Some(Resume::Must)) => Err(Error::RunIdRequired),
        (None, None | Some(Resume::Allow | Resume::Never)) => Ok(create()),
        (None, Some(Resume::Auto)) => {
            let mut decision = match existing {
                Some(snapshot) if snapshot.state != RunState::Finished => resume(snapshot),
                _ => create(),
            };
            decision.write_pointer = true;
            Ok(decision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STOPPED_AT_42: Snapshot = Snapshot { state: RunState::Crashed, next_step: 42 };
    const FINISHED: Snapshot = Snapshot { state: RunState::Finished, next_step: 7 };
    const FAILED: Snapshot = Snapshot { state: RunState::Failed, next_step: 9 };

    enum Expect {
        Create,
        Resumes(u64),
        NotFound,
        Exists,
        IdRequired,
    }

    #[test]
    fn the_policy_table() {
        use Expect::{Create, Exists, IdRequired, NotFound, Resumes};
        use Resume::{Allow, Auto, Must, Never};
        #[rustfmt::skip]
        type Case = (&'static str, Option<&'static str>, Option<Resume>, Option<&'static str>, Option<Snapshot>, Expect, bool, bool);
        let table: &[Case] = &[
            // (case, id, policy, pointer, snapshot of target, expected, pointer written, warned)
            ("must, exists", Some("r"), Some(Must), None, Some(STOPPED_AT_42), Resumes(42), false, false),
            ("must, missing", Some("r"), Some(Must), None, None, NotFound, false, false),
            ("allow, exists", Some("r"), Some(Allow), None, Some(STOPPED_AT_42), Resumes(42), false, false),
            ("allow, missing", Some("r"), Some(Allow), None, None, Create, false, false),
            ("never, exists", Some("r"), Some(Never), None, Some(FINISHED), Exists, false, false),
            ("never, missing", Some("r"), Some(Never), None, None, Create, false, false),
            ("id without policy, exists", Some("r"), None, None, Some(FINISHED), Exists, false, false),
            ("id without policy, missing", Some("r"), None, None, None, Create, false, false),
            ("no id, no policy", None, None, None, None, Create, false, false),
            ("no id, allow", None, Some(Allow), None, None, Create, false, false),
            ("no id, never", None, Some(Never), None, None, Create, false, false),
            ("no id, must", None, Some(Must), None, None, IdRequired, false, false),
            ("auto, no pointer", None, Some(Auto), None, None, Create, true, false),
            ("auto after a crash", None, Some(Auto), Some("p"), Some(STOPPED_AT_42), Resumes(42), true, false),
            ("auto after a failure", None, Some(Auto), Some("p"), Some(FAILED), Resumes(9), true, false),
            ("auto after a clean finish", None, Some(Auto), Some("p"), Some(FINISHED), Create, true, false),
            ("auto, pointer's run deleted", None, Some(Auto), Some("p"), None, Create, true, false),
            ("auto, explicit id wins", Some("r"), Some(Auto), Some("p"), None, Create, true, true),
            (
                "auto, explicit id resumes",
                Some("r"),
                Some(Auto),
                Some("p"),
                Some(STOPPED_AT_42),
                Resumes(42),
                true,
                true,
            ),
            (
                "auto, id equals pointer",
                Some("p"),
                Some(Auto),
                Some("p"),
                Some(STOPPED_AT_42),
                Resumes(42),
                true,
                false,
            ),
            ("pointer ignored without auto", None, Some(Allow), Some("p"), None, Create, false, false),
        ];
        for (case, id, policy, pointer, snapshot, expected, pointer_written, warned) in table {
            let request = Request { id: *id, policy: *policy, pointer: *pointer };
            let result = decide(&request, snapshot.as_ref());
            match (expected, &result) {
                (Create, Ok(d)) => assert_eq!(d.action, Action::Create, "{case}"),
                (Resumes(step), Ok(d)) => assert_eq!(d.action, Action::Resume { next_step: *step }, "{case}"),
                (NotFound, Err(Error::RunNotFound { id })) | (Exists, Err(Error::RunExists { id })) => {
                    assert_eq!(id, "r", "{case}");
                }
                (IdRequired, Err(Error::RunIdRequired)) => {}
                (_, other) => panic!("{case}: unexpected {other:?}"),
            }
            if let Ok(decision) = result {
                assert_eq!(decision.write_pointer, *pointer_written, "{case}: pointer");
                assert_eq!(decision.warning.is_some(), *warned, "{case}: warning");
            }
        }
    }

    #[test]
    fn the_target_is_the_id_then_the_auto_pointer() {
        let request = |id, policy, pointer| Request { id, policy, pointer };
        assert_eq!(request(Some("r"), Some(Resume::Auto), Some("p")).target(), Some("r"));
        assert_eq!(request(None, Some(Resume::Auto), Some("p")).target(), Some("p"));
        assert_eq!(request(None, Some(Resume::Allow), Some("p")).target(), None);
        assert_eq!(request(None, None, None).target(), None);
    }
}
