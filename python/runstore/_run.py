"""``runstore.Run``: a live run with W&B's methods and attributes."""

from __future__ import annotations

import os
import time
import warnings
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from . import _runstore
from ._config import Config, Summary, config_json
from .errors import InvalidArgument

#: The summary key counting rows dropped by ``on_step_regression="drop"`` (set by the extension).
DROPPED_KEY = "runstore/dropped_rows"

_SUMMARY_RULES = ("min", "max", "last", "mean", "first", "none")


class Run:
    """A run being written. Made by :func:`runstore.init`; use it as a context manager to
    finish it with the block's outcome (an exception finishes it ``failed``).

    ``log`` follows W&B's step rules: ``log(data)`` logs at ``run.step`` and advances it;
    ``log(data, commit=False)`` adds to the current step without advancing; ``log(data,
    step=n)`` moves to step ``n`` (at or after the current one) and adds to it until a later
    step or a ``log`` without ``step`` commits it.
    """

    def __init__(
        self,
        native: "_runstore.NativeRun",
        *,
        dir: str,
        project: Optional[str],
        name: Optional[str],
        notes: Optional[str],
        tags: List[str],
        config: Dict[str, Any],
        group: Optional[str],
        job_type: Optional[str],
        on_finish: Callable[["Run"], None],
    ) -> None:
        self._native = native
        self._on_finish = on_finish
        # The hot path: run.log is the extension's method until a summary rule needs a hook.
        self.log = native.log  # type: ignore[method-assign]
        self._rules: Dict[str, str] = {}
        self._rule_state: Dict[str, List[float]] = {}
        self._warned: set = set()
        self.dir = dir
        self.project = project
        self.name = name
        self.notes = notes
        self.tags = tuple(tags)
        self.group = group
        self.job_type = job_type
        self.start_time = time.time()
        self.starting_step = native.step
        self.config = Config(config, self._store_config)
        self.summary = Summary(self)

    # --- logging -----------------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
        """Logs ``data`` (metric names to numbers; nested dicts are flattened with ``/``).

        Values may be Python, numpy or torch numbers, 0-d arrays and tensors; NaN and
        infinities are stored bit-exact. Anything else raises :class:`InvalidValue`, a
        non-``str`` key :class:`InvalidKey`, and nothing of the call is stored. A ``step``
        before ``run.step`` raises :class:`StepRegression` (or, with
        ``init(on_step_regression="drop")``, is dropped with a warning and counted in the
        summary as ``runstore/dropped_rows``).
        """
        # Only while define_metric rules exist: otherwise `log` is the native method itself
        # (set in __init__), which saves a Python call on the hot path.
        self._native.log(data, step, commit)
        if self._rules:
            self._apply_rules(data)

    def define_metric(self, name: str, step_metric: Optional[str] = None, summary: Optional[str] = None, **ignored: Any) -> None:
        """Sets how a metric's summary is kept: ``summary`` is ``"min"``, ``"max"``, ``"mean"``,
        ``"first"``, ``"last"`` (the default) or ``"none"``; other settings are accepted."""
        if summary is None:
            return
        rules = [rule.strip() for rule in summary.split(",")]
        for rule in rules:
            if rule not in _SUMMARY_RULES:
                raise InvalidArgument(f"summary rule {rule!r} of metric {name!r}: expected one of {', '.join(_SUMMARY_RULES)}")
        self._rules[name] = rules[0]
        self.__dict__.pop("log", None)  # from now on Run.log applies the rules

    def _apply_rules(self, data: Mapping[str, Any]) -> None:
        for name, rule in self._rules.items():
            if rule == "last" or name not in data:
                continue
            value = float(data[name])
            state = self._rule_state.get(name)
            if state is None:
                state = self._rule_state[name] = [value, value, 0.0, 0.0, value]
            state[0] = min(state[0], value)
            state[1] = max(state[1], value)
            state[2] += value
            state[3] += 1
            kept = {"min": state[0], "max": state[1], "mean": state[2] / state[3], "first": state[4]}.get(rule)
            if kept is not None:
                self._native.set_summary(name, kept)

    # --- attributes --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run id."""
        return self._native.id

    @property
    def step(self) -> int:
        """The step the next ``log`` without ``step`` goes to."""
        return self._native.step

    @property
    def resumed(self) -> bool:
        """Whether ``init`` resumed an existing run."""
        return self._native.resumed

    @property
    def resumed_checkpoint(self) -> Optional[Dict[str, Any]]:
        """The checkpoint ``init(resume_from="checkpoint")`` resumed from (a dict: ``step``,
        ``path``, ``absolute``, ``size``, ``time``, ``attempt``, ``number``, ...): load it and
        train on from ``run.step`` (its step + 1). ``None`` otherwise, and when no recorded
        checkpoint's file existed (the run then starts again from step 0)."""
        return self._native.resumed_checkpoint

    @property
    def attempt(self) -> int:
        """This attempt's number: 1 for a new run, one more for each resume."""
        return self._native.attempt

    @property
    def last_step(self) -> Optional[int]:
        """The step of the last logged row, if any."""
        return self._native.last_step

    @property
    def finished(self) -> bool:
        """Whether ``finish`` was called."""
        return self._native.finished

    @property
    def dropped_rows(self) -> int:
        """Rows dropped by ``on_step_regression="drop"`` in this attempt."""
        return self._native.dropped_rows

    offline = True
    disabled = False

    @property
    def path(self) -> str:
        return f"{self.project or ''}/{self.id}"

    # --- the store ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Commits every buffered row now (rows are otherwise committed at least every second)."""
        self._native.flush()

    def rewind(self, step: int) -> Optional[Dict[str, Any]]:
        """Rewinds the run to ``step``: the rows after it become an archived branch (returned
        as a dict), and the next ``log`` goes to ``step + 1``."""
        return self._native.rewind(step)

    def checkpoint(self, path: Union[str, "os.PathLike[str]"], step: Optional[int] = None) -> Dict[str, Any]:
        """Records that the training state after ``step`` (default: the last logged step; at
        most that) was saved at ``path``, a file or directory that must exist. The record and
        every row logged so far are committed together, durably: a later
        ``init(resume_from="checkpoint")`` can restart from it. runstore only stats the path,
        never opens or deletes it. Returns the record (see :attr:`resumed_checkpoint`).
        Raises :class:`BeyondHistory` before any row is logged or for a later step."""
        return self._native.checkpoint(os.fspath(path), step)

    def mark_preempting(self) -> None:
        """Flushes and marks the run preempting: if the process then dies or finishes with a
        non-zero code, the run ends ``preempted``."""
        self._native.mark_preempting()

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        """Ends this attempt: ``finished`` for exit code 0 (the default), else ``failed`` (or
        ``preempted`` after ``mark_preempting``)."""
        try:
            self._native.finish(0 if exit_code is None else int(exit_code))
        finally:
            self._on_finish(self)

    def _store_config(self, changes: Dict[str, Any]) -> None:
        self._native.update_config(config_json(changes))

    def _set_summary(self, key: str, value: Any) -> None:
        self._native.set_summary(key, value)

    def _read_summary(self) -> Dict[str, float]:
        if not self._native.finished:
            self._native.flush()
        return dict(_runstore.open_run(self.dir, self.id).info()["summary"])

    # --- context manager ---------------------------------------------------------------------

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if self._native.finished:
            return False
        if kind is None:
            self.finish(0)
        elif issubclass(kind, SystemExit):
            code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
            self.finish(code)
        else:
            self.finish(1)
        return False

    # --- W&B methods with no offline meaning -------------------------------------------------

    def _nothing(self, method: str) -> None:
        if method not in self._warned:
            self._warned.add(method)
            warnings.warn(f"runstore: Run.{method} has no meaning offline and does nothing", stacklevel=3)

    def watch(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("watch")

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("unwatch")

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("save")

    def restore(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("restore")

    def log_artifact(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("log_artifact")

    def use_artifact(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("use_artifact")

    def log_code(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("log_code")

    def log_model(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("log_model")

    def use_model(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("use_model")

    def link_model(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("link_model")

    def alert(self, *args: Any, **kwargs: Any) -> None:
        self._nothing("alert")

    def __repr__(self) -> str:
        return f"<runstore.Run id={self.id!r} step={self.step} dir={os.fspath(self.dir)!r}>"


class DisabledRun:
    """The run of ``init(mode="disabled")``: every call does nothing."""

    id = "disabled"
    name = project = notes = group = job_type = None
    tags: tuple = ()
    step = starting_step = 0
    resumed = False
    resumed_checkpoint = None
    offline = True
    disabled = True
    finished = False
    dir = ""

    def __init__(self, config: Optional[Dict[str, Any]] = None, on_finish: Optional[Callable[[Any], None]] = None) -> None:
        self.config = Config(config)
        self.summary: Dict[str, Any] = {}
        self._on_finish = on_finish

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        if self._on_finish is not None:
            self._on_finish(self)

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None

    def __enter__(self) -> "DisabledRun":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.finish()
        return False
