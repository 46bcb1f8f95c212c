"""Hugging Face ``Trainer`` integration: ``Trainer(..., callbacks=[RunstoreCallback()])``.

- ``on_train_begin`` starts the run, or resumes it: the run id is kept in ``args.output_dir``
  (``runstore-run-id``), so running the same command again resumes the same run. When the
  Trainer resumes from a checkpoint (``train(resume_from_checkpoint=...)``), its step is
  known here (``state.global_step``, restored before this hook) and the run is rewound to it:
  the rows the dead attempt logged after the checkpoint are archived, not mixed into the live
  history. Training started afresh (step 0) in a directory whose run has rows starts a new run.
- ``on_log`` logs at ``state.global_step`` on the main process only, with W&B's key names
  (``train/loss``, ``eval/...``); the end-of-training numbers merge into the last step's row.
- ``on_save`` records the checkpoint directory (``output_dir/checkpoint-N``, covering the
  steps up to N) with ``run.checkpoint``: it is committed durably with every row up to it, and
  listed in ``Api().run(id).checkpoints``.
- ``on_train_end`` finishes the run.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from transformers import TrainerCallback
from transformers.integrations.integration_utils import rewrite_logs
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .. import _init, _runstore
from .._run import Run
from ..errors import RunNotFound
from ._common import numeric, record_checkpoint, rewind_to_checkpoint

#: The file in ``args.output_dir`` that names the run.
RUN_ID_FILE = "runstore-run-id"


class RunstoreCallback(TrainerCallback):
    """Logs a ``Trainer``'s metrics to runstore; see the module's documentation.

    ``dir`` is the store (default as :func:`runstore.init`); ``id`` fixes the run id instead of
    the one kept in ``output_dir``; other keyword arguments go to :func:`runstore.init`.
    """

    def __init__(self, dir: Optional[str] = None, id: Optional[str] = None, **init_kwargs: Any) -> None:
        self._dir = dir
        self._id = id
        self._init_kwargs = init_kwargs
        self.run: Optional[Run] = None
        self.rewound: Optional[Dict[str, Any]] = None

    def _config(self, args: Any, model: Any) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config.update(model_config.to_dict())
        config.update(args.to_dict())
        return config

    def _has_rows(self, id: str) -> bool:
        try:
            info = _runstore.open_run(_init.resolve_dir(self._dir), id).info()
        except RunNotFound:
            return False
        return info["last_step"] is not None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.run is not None:
            return
        id_file = os.path.join(args.output_dir, RUN_ID_FILE)
        id = self._id
        if id is None and os.path.isfile(id_file):
            with open(id_file, encoding="utf-8") as file:
                id = file.read().strip() or None
        resuming = state.global_step > 0
        if id is not None and self._id is None and not resuming and self._has_rows(id):
            # Training from scratch: the kept run's rows belong to an earlier training, which
            # is left as it stands; this one is a new run.
            id = None
        run = _init.init(
            id=id, resume="allow", dir=self._dir, config=self._config(args, model), reinit="create_new", **self._init_kwargs
        )
        if resuming:
            # checkpoint-N holds the state after step N: it covers the rows logged at steps <= N.
            self.rewound = rewind_to_checkpoint(run, state.global_step)
        os.makedirs(args.output_dir, exist_ok=True)
        with open(id_file, "w", encoding="utf-8") as file:
            file.write(run.id)
        self.run = run

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.run is None or not logs:
            return
        self.run.log(rewrite_logs(numeric(logs)), step=state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.run is not None:
            # The Trainer calls on_save after writing output_dir/checkpoint-{global_step}.
            path = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            record_checkpoint(self.run, path, state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero and self.run is not None:
            self.run.finish()
            self.run = None
