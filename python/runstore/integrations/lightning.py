"""Lightning integration: ``Trainer(logger=RunstoreLogger(...))``.

- The run starts (or resumes) on the first use, rank zero only. Without an ``id`` it uses
  ``resume="auto"``: running the same command in the same directory resumes the run it left
  unfinished.
- ``log_metrics`` logs at Lightning's step; ``log_hyperparams`` merges into the config.
- Resuming with ``fit(ckpt_path=...)``: a checkpoint at ``global_step`` N covers the logged
  steps below N, and the first ``log_metrics`` after the restart is at step N. When that step
  is at or below the run's last logged step, the run is rewound to N - 1 first: the rows the
  dead attempt logged after the checkpoint are archived, not mixed into the live history.
- ``after_save_checkpoint`` records the file just saved with ``run.checkpoint``, durably with
  the rows it covers: a checkpoint at ``global_step`` N covers the logged steps below N, so it
  is recorded at step N - 1 (``Api().run(id).checkpoints``). Lightning saves a step's
  checkpoint before it logs that step's metrics, so the record waits for the first
  ``log_metrics`` at or after step N - 1 (or ``finalize``): a process killed in between leaves
  the previous checkpoint as the newest recorded one.
- ``finalize(status)``: ``"success"`` finishes the run; ``"failed"`` ends it failed;
  ``"finished"`` (Lightning's SLURM auto-requeue handler, before the job is requeued) ends it
  preempted, to be resumed by the requeued job.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from .. import _init
from .._run import Run
from ._common import numeric, record_checkpoint, rewind_to_checkpoint


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
        #: Saved checkpoints (path, last covered step) not recorded yet: their step is not logged.
        self._pending: List[Tuple[str, int]] = []

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
        if self._pending:
            self._record_pending(run, run.last_step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._run is None:
            return
        # ModelCheckpoint sets these just before calling the loggers; other callbacks may not.
        path = getattr(checkpoint_callback, "_last_checkpoint_saved", None) or getattr(
            checkpoint_callback, "last_model_path", None
        )
        step = getattr(checkpoint_callback, "_last_global_step_saved", None)
        if not path or step is None:
            self._run.flush()
            return
        self._pending.append((str(path), step - 1))
        if self._run.last_step is None:
            self._run.flush()
        else:
            self._record_pending(self._run, self._run.last_step)

    def _record_pending(self, run: Run, logged: Optional[int]) -> None:
        """Records the pending checkpoints whose step is logged (``logged`` is the latest
        logged step; ``None`` records them all, at the last logged row at most)."""
        waiting = []
        for path, step in self._pending:
            if logged is None or step <= logged:
                record_checkpoint(run, path, step)
            else:
                waiting.append((path, step))
        self._pending = waiting

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
        self._record_pending(run, None)
        if status == "success":
            run.finish(0)
        elif status == "finished":
            run.mark_preempting()
            run.finish(1)
        else:
            run.finish(1)
