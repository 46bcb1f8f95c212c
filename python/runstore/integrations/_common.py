"""What the integrations share: the rewind of a resumed run to the checkpoint training
restarts from, and the numbers of a framework's log dict."""

from __future__ import annotations

import numbers
import os
from typing import Any, Dict, Mapping, Optional

from .._run import Run


def rewind_to_checkpoint(run: Run, covered: Optional[int]) -> Optional[Dict[str, Any]]:
    """Rewinds ``run`` so that its live history ends at step ``covered``, the last logged step
    a checkpoint covers: the rows the dead attempt logged after the checkpoint become an
    archived branch. Nothing to do when no row is after it (the rows after the checkpoint were
    never flushed, or there were none). ``covered`` below 0 (a checkpoint before any logged
    step) keeps step 0, the earliest a rewind can keep."""
    if covered is None:
        return None
    last = run.last_step
    if last is None or last <= covered:
        return None
    return run.rewind(max(covered, 0))


def record_checkpoint(run: Run, path: str, step: int) -> Optional[Dict[str, Any]]:
    """Records the checkpoint saved at ``path`` covering the logged steps up to ``step``. When
    the last logged row is before ``step`` (a save between two logs), the checkpoint is
    recorded at that row: no row lies between the two, so a resume from it rewinds to the same
    history. Nothing is recorded before the first row or for a path that does not exist (the
    rows are still flushed)."""
    last = run.last_step
    if last is None or step < 0 or not os.path.exists(path):
        run.flush()
        return None
    return run.checkpoint(path, step=min(step, last))


def numeric(logs: Mapping[str, Any]) -> Dict[str, Any]:
    """The entries of a framework's log dict that are numbers (frameworks log some text, such
    as a learning-rate scheduler's name, which runstore does not store)."""
    kept = {}
    for key, value in logs.items():
        if isinstance(value, bool) or isinstance(value, numbers.Number) or getattr(value, "ndim", None) == 0:
            if isinstance(value, complex):
                continue
            kept[key] = value
    return kept


__all__ = ["numeric", "record_checkpoint", "rewind_to_checkpoint"]
