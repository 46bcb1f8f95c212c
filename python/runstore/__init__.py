"""runstore: W&B's run API on an embedded, offline, crash-safe store.

``import runstore as wandb`` runs a script written for W&B: ``init`` starts or resumes a run
(``resume="must"|"allow"|"never"|"auto"``), ``log`` records metrics with W&B's step rules,
``finish`` ends the attempt. A process that dies leaves its run ``crashed`` with every flushed
row intact, and the next ``init`` with the same id resumes it at the next step.

>>> import runstore
>>> run = runstore.init(id="demo", resume="allow", dir=store_dir, config={"lr": 3e-4})
>>> for step in range(100):
...     runstore.log({"loss": 1.0 / (1 + step)})
>>> runstore.finish()
>>> runstore.Api(store_dir).run("demo").summary["loss"]
0.01
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from . import errors
from ._config import Config, Summary
from ._init import DEFAULT_DIR, _live, current, init, require
from ._run import DisabledRun, Run
from .api import Api, ApiRun
from .errors import *  # noqa: F403 - the exception classes are part of the package's API
from .errors import Error

__all__ = [
    "Api",
    "ApiRun",
    "Config",
    "DEFAULT_DIR",
    "DisabledRun",
    "Error",
    "Run",
    "Summary",
    "config",
    "define_metric",
    "errors",
    "finish",
    "init",
    "log",
    "mark_preempting",
    "run",
    "summary",
]


def log(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
    """``runstore.run.log(data, step, commit)``: logs to the current run."""
    if _live:  # the hot path: no helper call
        return _live[-1].log(data, step, commit)
    require()


def finish(exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
    """Finishes the current run (nothing to do when there is none, as in W&B)."""
    run_ = current()
    if run_ is not None:
        run_.finish(exit_code)


def mark_preempting() -> None:
    """Marks the current run preempting."""
    require().mark_preempting()


def define_metric(name: str, step_metric: Optional[str] = None, summary: Optional[str] = None, **settings: Any) -> None:
    """``runstore.run.define_metric(...)`` on the current run."""
    require().define_metric(name, step_metric=step_metric, summary=summary, **settings)


def __getattr__(name: str) -> Any:
    # runstore.run, runstore.config and runstore.summary follow the current run.
    if name == "run":
        return current()
    if name == "config":
        run_ = current()
        return run_.config if run_ is not None else None
    if name == "summary":
        run_ = current()
        return run_.summary if run_ is not None else None
    raise AttributeError(f"module 'runstore' has no attribute {name!r}")
