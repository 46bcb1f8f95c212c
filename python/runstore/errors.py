"""runstore's exceptions: one class per error of the Rust library, plus the Python API's own.

Every class is a subclass of :class:`runstore.Error`; the ones about a bad argument are also
``ValueError``/``TypeError``, and a missing run is also a ``LookupError``, so that code written
against the built-in classes keeps working. The attributes of each class are the fields of the
Rust variant (``RunLocked.pid``, ``RunLocked.host``, ``StepRegression.next``, ...).
"""

from __future__ import annotations

from typing import Any, Optional


class Error(Exception):
    """Base class of every runstore error."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        for name, value in fields.items():
            setattr(self, name, value)


# --- the Rust library's variants -------------------------------------------------------------


class InvalidRunId(Error, ValueError):
    """A run id that cannot name a run: 1 to 64 of ``[A-Za-z0-9_.-]``, not starting with ``.``."""

    id: str
    reason: str


class InvalidMetricName(Error, ValueError):
    """A metric or summary name that is empty, longer than 256 bytes, or has control characters."""

    name: str
    reason: str


class InvalidConfig(Error, ValueError):
    """A config that is not a JSON object."""

    reason: str


class InvalidEnvironment(Error, ValueError):
    """An environment variable runstore reads holds a value it cannot use."""

    variable: str
    value: str
    reason: str


class RunIdRequired(Error, ValueError):
    """``resume="must"`` (or ``resume_from``) without a run id."""


class RunNotFound(Error, LookupError):
    """No run with this id exists."""

    id: str


class RunExists(Error):
    """A run with this id exists and the resume policy forbids touching it."""

    id: str


class RunLocked(Error):
    """Another process (or another handle in this one) is writing the run."""

    id: str
    pid: int
    host: str
    since: float


class StepRegression(Error, ValueError):
    """A row logged at a step before the run's current step."""

    id: str
    requested: int
    next: int
    last: Optional[int]


class StepOutOfRange(Error, ValueError):
    """A step at the very top of the 64-bit range."""

    step: int


class BeyondHistory(Error, ValueError):
    """A rewind or fork at a step after the run's last logged step."""

    id: str
    requested: int
    last: Optional[int]


class RewindBeforeFork(Error, ValueError):
    """A rewind of a fork to before the step it was forked at."""

    id: str
    requested: int
    parent: str
    fork_step: int


class ForkedProcess(Error, RuntimeError):
    """A process forked from a run's writer logged to, flushed or finished the run: only the
    process that started it writes it."""

    id: str
    owner: int
    pid: int


class CheckpointBeforeFork(Error, ValueError):
    """A checkpoint recorded on a fork for a step before the one it was forked at."""

    id: str
    step: int
    parent: str
    fork_step: int


class BranchNotFound(Error, LookupError):
    """An archived branch id the run does not have."""

    id: str
    branch: int


class InvalidQueueName(Error, ValueError):
    """A queue name that cannot name a queue."""


class QueueNotFound(Error, LookupError):
    """No queue with this name."""


class QueueItemNotFound(Error, LookupError):
    """The queue has no item with this id."""


class QueueItemExists(Error):
    """The queue already has an item with this id."""


class QueueItemClaimed(Error):
    """The item is being run by a live agent."""


class InvalidSweepSpace(Error, ValueError):
    """A sweep search space that cannot be used."""


class UnsupportedFormat(Error):
    """A file written by a newer runstore."""

    path: str
    found: int
    supported: int


class Corrupt(Error):
    """A file whose contents cannot be interpreted."""

    path: str
    detail: str


class Io(Error, OSError):
    """An I/O error on a file of the store."""

    path: str


class Storage(Error, OSError):
    """The storage engine reported an error (full disk, I/O error, ...)."""

    path: str


# --- the Python API's own --------------------------------------------------------------------


class InvalidValue(Error, TypeError):
    """A logged value that is not a number (text, a list, an array with dimensions, None, ...)."""


class InvalidKey(Error, TypeError):
    """A metric name that is not a ``str``."""


class InvalidStep(Error, ValueError):
    """A negative step."""


class InvalidResume(Error, ValueError):
    """A ``resume`` that is not ``"must"``, ``"allow"``, ``"never"``, ``"auto"``, a bool or None."""


class InvalidArgument(Error, ValueError):
    """An ``init`` argument that cannot be used (a malformed ``resume_from``, ...)."""


class ForkWithoutStep(Error, ValueError):
    """``fork_from`` without the step to fork at: ``fork_from="{run_id}?_step={step}"``."""


class RunFinished(Error):
    """A run used after ``finish``."""


class AlreadyInitialized(Error):
    """``init`` while a run is live in this process, without ``reinit``."""

    id: str


class NoActiveRun(Error):
    """A module-level call (``runstore.log``, ...) with no run started."""


__all__ = [name for name, value in list(globals().items()) if isinstance(value, type) and issubclass(value, Error)]
