"""Lightning integration: ``Trainer(logger=RunstoreLogger(...))``.

- The run starts (or resumes) on the first use, rank zero only. Without an ``id`` it uses
  ``resume="auto"``: running the same command in the same directory resumes the run it left
  unfinished.
- ``log_metrics`` logs at Lightning's step; ``log_hyperparams`` merges into the config.
- Resuming with ``fit(ckpt_path=...)``: a checkpoint at ``global_step`` N covers the logged
  steps below N, and the first ``log_metrics`` after the restart is at step N. When that step
  is at or below the run's last logged step, the run is rewound to N - 1 first: the rows the
  dead attempt logged after the checkpoint are archived, not mixed into the live history.
- ``after_save_checkpoint`` flushes, so that the rows a checkpoint covers are on disk with it.
- ``finalize(status)``: ``"success"`` finishes the run; ``"failed"`` ends it failed;
  ``"finished"`` (Lightning's SLURM auto-requeue handler, before the job is requeued) ends it
  preempted, to be resumed by the requeued job.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from .. import _init
from .._run import Run
from ._common import numeric, rewind_to_checkpoint


class RunstoreLogger(Logger):
    """Logs a Lightning ``Trainer``'s metrics to runstore; see the module's documentation.

    ``dir`` is the store (default as :func:`runstore.init`); ``id``, ``project``, ``name``,
    ``resume`` and other keyword arguments go to :func:`runstore.init`.
    """

    def __init__(
        self,
        dir: Optional[str] = None,
        id: Optional[str] = None,
        project: Optional[str] = None,
        resume: Optional[str] = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        self._dir = dir
        self._id = id
        self._project = project
        self._resume = resume or ("allow" if id is not None else "auto")
        self._init_kwargs = init_kwargs
        self._run: Optional[Run] = None
        self._checked_resume = False
        self.rewound: Optional[Dict[str, Any]] = None

    @property
    @rank_zero_only
    def experiment(self) -> Run:
        """The runstore run (started on first use)."""
        if self._run is None:
            self._run = _init.init(
                id=self._id, project=self._project, resume=self._resume, dir=self._dir, reinit="create_new", **self._init_kwargs
            )
        return self._run

    @property
    def name(self) -> str:
        return self._project or "runstore"

    @property
    def version(self) -> Union[int, str]:
        return self._run.id if self._run is not None else (self._id or "")

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        self.experiment.config.update(dict(params or {}))

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        run = self.experiment
        if not self._checked_resume:
            self._checked_resume = True
            if step is not None and run.resumed:
                # The first step after a restart from a checkpoint at global_step N is N.
                self.rewound = rewind_to_checkpoint(run, step - 1)
        run.log(numeric(metrics), step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._run is not None:
            self._run.flush()

    @rank_zero_only
    def save(self) -> None:
        if self._run is not None and not self._run.finished:
            self._run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        run, self._run = self._run, None
        if run is None or run.finished:
            return
        # A later use (trainer.test() after fit) resumes this run rather than starting another.
        self._id, self._resume, self._checked_resume = run.id, "allow", True
        if status == "success":
            run.finish(0)
        elif status == "finished":
            run.mark_preempting()
            run.finish(1)
        else:
            run.finish(1)
