"""Reading runs: ``runstore.Api(dir).run(id)`` and ``.runs(...)``, with W&B's history calls and
numpy series."""

from __future__ import annotations

import json
import os
import sys
from array import array
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _runstore

#: The prefix of system-metric names (as W&B's ``system/...``); their samples are by time.
SYSTEM_PREFIX = "system/"
_NATIVE = "<" if sys.byteorder == "little" else ">"


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


class ApiRun:
    """A stored run, read from the store (it may be live in another process)."""

    def __init__(self, dir: str, id: str, info: Optional[Dict[str, Any]] = None) -> None:
        self._dir = dir
        self._reader = _runstore.open_run(dir, id)
        self._info = info if info is not None else self._reader.info()

    def refresh(self) -> None:
        """Reads the run's info again."""
        self._info = self._reader.info()

    # --- the run's record --------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._info["id"]

    @property
    def name(self) -> Optional[str]:
        return self._info["name"]

    @property
    def project(self) -> Optional[str]:
        return self._info["project"]

    @property
    def tags(self) -> List[str]:
        return list(self._info["tags"])

    @property
    def notes(self) -> Optional[str]:
        return self._info["notes"]

    @property
    def state(self) -> str:
        """``running``, ``finished``, ``failed``, ``crashed``, ``preempting`` or ``preempted``."""
        return self._info["state"]

    @property
    def exit_code(self) -> Optional[int]:
        return self._info["exit_code"]

    @property
    def config(self) -> Dict[str, Any]:
        return json.loads(self._info["config_json"])

    @property
    def summary(self) -> Dict[str, float]:
        """Each metric's last logged value, and values set with ``summary[...] = ...``."""
        return dict(self._info["summary"])

    @property
    def last_step(self) -> Optional[int]:
        return self._info["last_step"]

    @property
    def created_at(self) -> float:
        return self._info["created_at"]

    @property
    def forked_from(self) -> Optional[Tuple[str, int]]:
        return self._info["forked_from"]

    @property
    def attempts(self) -> List[Dict[str, Any]]:
        """Each start of the run: ``number``, ``host``, ``pid``, ``first_step``, ``last_step``,
        ``outcome``, ``exit_code``, ``started_at``, ``ended_at``."""
        return self._reader.attempts()

    @property
    def branches(self) -> List[Dict[str, Any]]:
        """The archived branches: rows moved aside by rewinds (``id``, ``rewound_to``,
        ``first_step``, ``last_step``, ``rows``, ``by_attempt``)."""
        return self._reader.branches()

    @property
    def system_notes(self) -> List[str]:
        """Why some system metrics were not recorded (``"system metrics: no GPU metrics
        (libnvidia-ml.so.1 not found)"``), as the run's last sampling attempt found."""
        return list(self._info.get("system_notes", []))

    @property
    def checkpoints(self) -> List[Dict[str, Any]]:
        """The recorded checkpoints, in the order recorded: ``step``, ``path``, ``absolute``,
        ``exists`` (whether the path exists now), ``size``, ``time``, ``attempt``, ``number``
        and ``branch`` (the archived branch a rewind moved it to, else ``None``)."""
        return self._reader.checkpoints()

    def metrics(self) -> List[str]:
        """The names of the run's metrics logged by step (system metrics are in
        :meth:`system_metrics`)."""
        return [name for name in self._reader.metrics() if not name.startswith(SYSTEM_PREFIX)]

    def system_metrics(self) -> Dict[str, Tuple[Any, Any]]:
        """The run's system metrics (``system/cpu_percent``, ``system/memory_rss_mib``, ...;
        sampled against time, not step): per name, two arrays, the sample times in seconds
        since the Unix epoch and the values (numpy arrays when numpy is installed, else
        ``array.array``), all read in one snapshot of the run."""
        numpy = _numpy()
        result: Dict[str, Tuple[Any, Any]] = {}
        for name, times_bytes, values_bytes in self._reader.system():
            if numpy is not None:
                result[name] = (
                    numpy.frombuffer(times_bytes, dtype=_NATIVE + "f8"),
                    numpy.frombuffer(values_bytes, dtype=_NATIVE + "f8"),
                )
            else:
                times, values = array("d"), array("d")
                times.frombytes(bytes(times_bytes))
                values.frombytes(bytes(values_bytes))
                result[name] = (times, values)
        return result

    # --- history -----------------------------------------------------------------------------

    def scan_history(
        self,
        keys: Optional[Sequence[str]] = None,
        min_step: Optional[int] = None,
        max_step: Optional[int] = None,
        page_size: int = 1000,
        branch: Optional[int] = None,
    ) -> Iterator[Dict[str, Any]]:
        """Every row in step order as a dict with ``_step``, streamed ``page_size`` rows at a
        time. ``keys`` keeps those metrics (rows with none of them are skipped, as in W&B);
        ``branch`` reads an archived branch instead of the live history."""
        scan = self._reader.scan(
            list(keys) if keys is not None else None,
            branch,
            0 if min_step is None else min_step,
            (1 << 64) - 1 if max_step is None else max_step,
        )
        while True:
            chunk = scan.next_chunk(max(1, page_size))
            if not chunk:
                return
            for step, values in chunk:
                if keys is not None and not values:
                    continue
                values["_step"] = step
                yield values

    def history(
        self,
        keys: Optional[Sequence[str]] = None,
        samples: Optional[int] = 500,
        pandas: bool = True,
        x_axis: str = "_step",
        branch: Optional[int] = None,
        stream: str = "default",
    ) -> Any:
        """The history as a pandas DataFrame (``pandas=True`` and pandas installed), else a list
        of row dicts. ``samples`` rows at most, evenly spaced and keeping the first and last (W&B's
        default 500; ``None`` for all). With ``keys``, only rows that have every key.

        ``stream="system"`` (W&B's ``"events"`` is accepted too) gives the system metrics
        instead: one row per sampling time, with ``_timestamp`` (seconds since the Unix epoch)
        and each metric sampled then."""
        if stream in ("system", "events"):
            return self._system_history(keys, samples, pandas)
        if stream != "default":
            raise ValueError(f"stream={stream!r}: expected 'default', 'system' or 'events'")
        if pandas:
            try:
                import pandas as pd
            except ImportError:
                pandas = False
        if not pandas:
            rows = list(self.scan_history(keys=keys, branch=branch))
            if keys is not None:
                rows = [row for row in rows if all(key in row for key in keys)]
            return [rows[index] for index in _sample(len(rows), samples)]
        numpy = _numpy()
        steps_bytes, columns = self._reader.columns(list(keys) if keys is not None else None, branch)
        steps = numpy.frombuffer(steps_bytes, dtype=_NATIVE + "i8")
        data = {name: numpy.frombuffer(values, dtype=_NATIVE + "f8") for name, values, _ in columns}
        frame = pd.DataFrame({"_step": steps, **data})
        if keys is not None:
            # Rows that have every key (a logged NaN counts as had).
            keep = numpy.ones(len(steps), dtype=bool)
            for _, _, present in columns:
                keep &= numpy.frombuffer(present, dtype=numpy.uint8).astype(bool)
            frame = frame[keep]
        picked = list(_sample(len(frame), samples))
        if len(picked) != len(frame):
            frame = frame.iloc[picked]
        return frame.reset_index(drop=True)

    def _system_history(self, keys: Optional[Sequence[str]], samples: Optional[int], pandas: bool) -> Any:
        """The rows of ``history(stream="system")``: samples taken at one time share a row."""
        by_time: Dict[float, Dict[str, Any]] = {}
        for name, (times, values) in self.system_metrics().items():
            if keys is not None and name not in keys:
                continue
            for time, value in zip(times.tolist(), values.tolist()):
                by_time.setdefault(time, {"_timestamp": time})[name] = value
        rows = [by_time[time] for time in sorted(by_time)]
        if keys is not None:
            rows = [row for row in rows if all(key in row for key in keys)]
        rows = [rows[index] for index in _sample(len(rows), samples)]
        if pandas:
            try:
                import pandas as pd
            except ImportError:
                return rows
            return pd.DataFrame(rows)
        return rows

    def series(self, metric: str, branch: Optional[int] = None) -> Tuple[Any, Any]:
        """One metric's points as two arrays, steps (int64) and values (float64): numpy arrays
        when numpy is installed, else ``array.array``. No Python object is made per point."""
        steps_bytes, values_bytes = self._reader.series(metric, branch)
        numpy = _numpy()
        if numpy is not None:
            return numpy.frombuffer(steps_bytes, dtype=_NATIVE + "i8"), numpy.frombuffer(values_bytes, dtype=_NATIVE + "f8")
        steps, values = array("q"), array("d")
        steps.frombytes(bytes(steps_bytes))
        values.frombytes(bytes(values_bytes))
        return steps, values

    def __repr__(self) -> str:
        return f"<runstore.ApiRun id={self.id!r} state={self.state!r}>"


def _sample(count: int, samples: Optional[int]) -> Iterator[int]:
    """Indexes of ``samples`` rows of ``count``, evenly spread, first and last included."""
    if samples is None or count <= samples:
        return iter(range(count))
    if samples <= 1:
        return iter(range(min(count, max(samples, 0))))
    return iter(sorted({round(index * (count - 1) / (samples - 1)) for index in range(samples)}))


class Api:
    """Reads the store at ``dir`` (``RUNSTORE_DIR``, ``WANDB_DIR``, else ``./.runstore``)."""

    def __init__(self, dir: Union[str, "os.PathLike[str]", None] = None, overrides: Any = None, **ignored: Any) -> None:
        if dir is None:
            dir = os.environ.get("RUNSTORE_DIR") or os.environ.get("WANDB_DIR") or ".runstore"
        self.dir = os.fspath(dir)

    def run(self, path: str) -> ApiRun:
        """The run ``"id"``, ``"project/id"`` or ``"entity/project/id"``."""
        return ApiRun(self.dir, path.rsplit("/", 1)[-1])

    def runs(
        self,
        project: Optional[str] = None,
        filters: Optional[Mapping[str, Any]] = None,
        state: Optional[str] = None,
        **ignored: Any,
    ) -> List[ApiRun]:
        """The runs of the store, oldest first: of ``project`` (``"entity/project"`` works),
        in ``state``, and matching ``filters`` (``{"state": ...}``, ``{"config.lr": 0.1}``,
        ``{"config": {"lr": 0.1}}`` compare for equality)."""
        if project is not None:
            project = project.rsplit("/", 1)[-1]
        filters = dict(filters or {})
        if state is not None:
            filters["state"] = state
        chosen = []
        for info in _runstore.list_runs(self.dir):
            if project is not None and info["project"] != project:
                continue
            if not _matches(info, filters):
                continue
            chosen.append(ApiRun(self.dir, info["id"], info))
        chosen.sort(key=lambda run: run.created_at)
        return chosen


def _matches(info: Dict[str, Any], filters: Mapping[str, Any]) -> bool:
    config = None
    for key, wanted in filters.items():
        if key in ("state", "project", "name", "id", "notes"):
            if info[key] != wanted:
                return False
            continue
        if key == "tags":
            if wanted not in info["tags"]:
                return False
            continue
        if config is None:
            config = json.loads(info["config_json"])
        if key == "config" and isinstance(wanted, Mapping):
            if any(config.get(name) != value for name, value in wanted.items()):
                return False
            continue
        name = key[len("config.") :] if key.startswith("config.") else key
        if config.get(name) != wanted:
            return False
    return True
