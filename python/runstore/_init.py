"""``runstore.init`` and the process's current run: W&B's arguments, environment and reinit
rules on top of the Rust library's resume engine."""

from __future__ import annotations

import atexit
import json
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _runstore
from ._config import config_json
from ._run import DisabledRun, Run
from .errors import (
    AlreadyInitialized,
    ForkWithoutStep,
    InvalidArgument,
    InvalidResume,
    InvalidRunId,
    NoActiveRun,
)

#: The store directory when neither ``dir``, ``RUNSTORE_DIR`` nor ``WANDB_DIR`` says otherwise.
DEFAULT_DIR = ".runstore"

_POLICIES = ("must", "allow", "never", "auto")
_REINIT = (None, False, True, "default", "finish_previous", "return_previous", "create_new")
_IGNORED = ("entity", "force", "save_code", "tensorboard", "sync_tensorboard", "monitor_gym", "anonymous")
#: Seconds between system-metric samples when neither ``settings`` nor
#: ``RUNSTORE_SYSTEM_METRICS`` says otherwise: on, as W&B users expect.
SYSTEM_METRICS_SECONDS = 10.0
#: The ``settings`` keys that turn system metrics off (runstore's, then W&B's spellings).
_STATS_OFF = ("x_disable_stats", "_disable_stats", "disable_stats")
#: The ``settings`` keys giving the sampling interval in seconds.
_STATS_INTERVAL = ("x_stats_sampling_interval", "_stats_sample_rate_seconds", "stats_sampling_interval")
_STEP_FORM = re.compile(r"^(?P<id>[^?]+)\?_step=(?P<step>\d+)$")

#: The live runs of this process, oldest first; the last is ``runstore.run``.
_live: List[Run] = []
_uncaught: List[BaseException] = []


def _env(*names: str) -> Optional[str]:
    """The first of ``names`` set to a non-blank value."""
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip():
            return value.strip()
    return None


def _policy(resume: Union[str, bool, None]) -> Optional[str]:
    if resume is None or resume is False:
        return None
    if resume is True:
        return "auto"
    if isinstance(resume, str) and resume.lower() in _POLICIES:
        return resume.lower()
    raise InvalidResume(f"resume={resume!r}: expected 'must', 'allow', 'never', 'auto', True, False or None")


def _step_reference(value: Union[str, int], what: str) -> Tuple[Optional[str], int]:
    """``"{run_id}?_step={step}"`` or a plain step, as ``(run_id, step)``."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{what}={value!r}: expected '{{run_id}}?_step={{step}}' or a step")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"{what}={value}: steps start at 0")
        return None, value
    if isinstance(value, str):
        match = _STEP_FORM.match(value.strip())
        if match:
            return match["id"], int(match["step"])
        if value.strip().isdigit():
            return None, int(value.strip())
        if what == "fork_from":
            raise ForkWithoutStep(f"fork_from={value!r} has no step: write fork_from='{value}?_step=N'")
    raise InvalidArgument(f"{what}={value!r}: expected '{{run_id}}?_step={{step}}' or a step")


def _setting(settings: Any, key: str) -> Any:
    """``settings[key]`` of a dict, else the attribute of a settings object (``wandb.Settings``);
    ``None`` when unset."""
    if settings is None:
        return None
    if isinstance(settings, Mapping):
        return settings.get(key)
    return getattr(settings, key, None)


def _system_metrics(settings: Any) -> Optional[float]:
    """Seconds between system-metric samples, 0 for none, or ``None`` to leave the choice to
    ``RUNSTORE_SYSTEM_METRICS``: from ``settings`` (``system_metrics``: seconds, True or False;
    W&B's ``x_disable_stats`` and ``x_stats_sampling_interval``), else 10 s."""
    chosen = _setting(settings, "system_metrics")
    if chosen is None and any(_setting(settings, key) is True for key in _STATS_OFF):
        chosen = False
    if chosen is None:
        chosen = next((value for key in _STATS_INTERVAL if (value := _setting(settings, key)) is not None), None)
    if chosen is None:
        return None if _env("RUNSTORE_SYSTEM_METRICS") is not None else SYSTEM_METRICS_SECONDS
    if chosen is True:
        return SYSTEM_METRICS_SECONDS
    if chosen is False:
        return 0.0
    if isinstance(chosen, (int, float)) and chosen >= 0 and chosen != float("inf"):
        return float(chosen)
    raise InvalidArgument(
        f"settings system_metrics={chosen!r}: expected seconds between samples (> 0), 0 or False for none, or True"
    )


def _ignored_settings(settings: Any) -> List[str]:
    """The keys of a ``settings`` dict that runstore has no use for (an object's are not listed:
    ``wandb.Settings`` has hundreds of attributes)."""
    known = ("system_metrics", *_STATS_OFF, *_STATS_INTERVAL)
    if isinstance(settings, Mapping):
        return [f"settings[{key!r}]" for key, value in settings.items() if key not in known and value is not None]
    return []


def _load_config(config: Any) -> Dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        with open(path, encoding="utf-8") as file:
            text = file.read()
        if path.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as error:
                raise InvalidArgument(f"config={path!r} is YAML: install pyyaml, or pass a dict") from error
            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise InvalidArgument(f"config file {path!r} does not hold a mapping")
        return loaded
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "__dict__"):  # argparse.Namespace and the like
        return dict(vars(config))
    raise InvalidArgument(f"config must be a dict, a Namespace or a path, got a {type(config).__name__}")


def init(
    id: Optional[str] = None,
    project: Optional[str] = None,
    name: Optional[str] = None,
    config: Any = None,
    tags: Optional[Sequence[str]] = None,
    notes: Optional[str] = None,
    resume: Union[str, bool, None] = None,
    dir: Union[str, "os.PathLike[str]", None] = None,
    resume_from: Union[str, int, None] = None,
    fork_from: Optional[str] = None,
    reinit: Union[bool, str, None] = None,
    *,
    group: Optional[str] = None,
    job_type: Optional[str] = None,
    mode: Optional[str] = None,
    config_exclude_keys: Optional[Sequence[str]] = None,
    config_include_keys: Optional[Sequence[str]] = None,
    allow_val_change: Optional[bool] = None,
    on_step_regression: str = "raise",
    durability: str = "buffered",
    entity: Any = None,
    force: Any = None,
    save_code: Any = None,
    tensorboard: Any = None,
    sync_tensorboard: Any = None,
    monitor_gym: Any = None,
    settings: Any = None,
    anonymous: Any = None,
) -> Run:
    """Starts a run, or resumes one, in the store at ``dir`` (``RUNSTORE_DIR``, ``WANDB_DIR``,
    else ``./.runstore``), with W&B's arguments.

    ``resume`` decides what an existing id means: ``"must"`` resumes it (it must exist),
    ``"allow"`` resumes or creates, ``"never"`` creates (it must not exist), ``"auto"`` (or
    ``True``) resumes the run this directory left unfinished, else starts a new one. With an id
    and no policy, an existing run is never touched (:class:`RunExists`).

    ``resume_from="{id}?_step={n}"`` (or a step with ``id``) resumes the run rewound to step
    ``n``: the rows after it become an archived branch, and the next ``log`` goes to ``n + 1``.
    ``resume_from="checkpoint"`` (runstore's own; W&B has no such value) resumes the run
    rewound to its newest recorded checkpoint (:meth:`Run.checkpoint`) whose file still
    exists, with a warning for each newer one whose file is gone; ``run.resumed_checkpoint``
    says which, ``None`` when none exists (the run then starts again from step 0).
    ``RUNSTORE_RESUME_FROM=checkpoint`` (or a step) does the same when ``resume_from`` is unset.
    ``fork_from="{id}?_step={n}"`` starts a new run whose history up to ``n`` is that run's.

    Unset arguments come from ``RUNSTORE_RUN_ID``, ``RUNSTORE_RESUME``, ``RUNSTORE_PROJECT``,
    then ``WANDB_RUN_ID``, ``WANDB_RESUME``, ``WANDB_PROJECT``, ``WANDB_NAME``, ``WANDB_NOTES``,
    ``WANDB_TAGS``, ``WANDB_RUN_GROUP``, ``WANDB_JOB_TYPE``, ``WANDB_MODE``.

    A second ``init`` while a run is live raises :class:`AlreadyInitialized` unless ``reinit``
    says what to do: ``True``/``"finish_previous"`` finishes it, ``"return_previous"`` (and
    ``"default"``) returns it, ``"create_new"`` keeps both.

    runstore's own: ``on_step_regression="drop"`` drops a row logged at an earlier step with a
    warning, as W&B does (counted in the summary as ``runstore/dropped_rows``), instead of
    raising :class:`StepRegression`; ``durability="every_log"`` makes each row durable (one
    ``fdatasync`` into the run's journal) before ``log`` returns. Arguments with no offline
    meaning (``entity``, ``tensorboard``, ...) are accepted and ignored, with one warning.

    System metrics (CPU, memory, disk, network, NVIDIA GPUs) are sampled every 10 s on a
    background thread, against time, as W&B does: ``settings={"system_metrics": 30}`` changes
    the interval, ``settings={"system_metrics": False}`` (or W&B's ``x_disable_stats=True``)
    turns them off, and W&B's ``x_stats_sampling_interval`` is read too; ``settings`` may be a
    dict or a ``wandb.Settings``-like object. Without either, ``RUNSTORE_SYSTEM_METRICS``
    (seconds, ``0`` for none) decides when it is set.
    """
    ignored = [
        key
        for key, value in zip(_IGNORED, (entity, force, save_code, tensorboard, sync_tensorboard, monitor_gym, anonymous))
        if value is not None
    ]
    ignored += _ignored_settings(settings)
    if ignored:
        warnings.warn(f"runstore.init: {', '.join(ignored)} have no meaning offline and are ignored", stacklevel=2)
    if reinit not in _REINIT:
        raise InvalidArgument(f"reinit={reinit!r}: expected one of {_REINIT}")
    if on_step_regression not in ("raise", "drop"):
        raise InvalidArgument(f"on_step_regression={on_step_regression!r}: expected 'raise' or 'drop'")
    if durability not in ("buffered", "every_log"):
        raise InvalidArgument(f"durability={durability!r}: expected 'buffered' or 'every_log'")
    system_metrics = _system_metrics(settings)

    mode = mode or _env("WANDB_MODE")
    loaded = _load_config(config)
    if config_include_keys:
        loaded = {key: value for key, value in loaded.items() if key in set(config_include_keys)}
    if config_exclude_keys:
        loaded = {key: value for key, value in loaded.items() if key not in set(config_exclude_keys)}
    if mode not in (None, "online", "offline", "shared", "run", "disabled"):
        raise InvalidArgument(f"mode={mode!r}: expected 'online', 'offline', 'shared' or 'disabled'")

    current = _live[-1] if _live else None
    if current is not None:
        if reinit in (None, False):
            raise AlreadyInitialized(
                f"run {current.id!r} is live in this process: finish it first, or pass reinit=True "
                "(finish it), reinit='return_previous' or reinit='create_new'",
                id=current.id,
            )
        if reinit in ("return_previous", "default"):
            return current
        if reinit in (True, "finish_previous"):
            current.finish()

    if mode == "disabled":
        disabled = DisabledRun(loaded, on_finish=_forget)
        _live.append(disabled)  # type: ignore[arg-type]
        return disabled  # type: ignore[return-value]
    if id is not None and not isinstance(id, str):
        raise InvalidRunId(f"invalid run id {id!r}: ids are str", id=repr(id), reason="not a str")
    if _env("RUNSTORE_RUN_ID") is None and id is None:
        id = _env("WANDB_RUN_ID")
    policy = _policy(resume)
    if policy is None and _env("RUNSTORE_RESUME") is None:
        policy = _policy(_env("WANDB_RESUME"))
    if project is None and _env("RUNSTORE_PROJECT") is None:
        project = _env("WANDB_PROJECT")
    name = name if name is not None else _env("WANDB_NAME")
    notes = notes if notes is not None else _env("WANDB_NOTES")
    group = group if group is not None else _env("WANDB_RUN_GROUP")
    job_type = job_type if job_type is not None else _env("WANDB_JOB_TYPE")
    if tags is None:
        tags = [tag.strip() for tag in (_env("WANDB_TAGS") or "").split(",") if tag.strip()]
    if isinstance(tags, str):
        tags = [tags]
    store_dir = resolve_dir(dir)

    rewind_to = fork = None
    from_checkpoint = False
    if resume_from is not None and fork_from is not None:
        raise InvalidArgument("resume_from and fork_from exclude each other: resume a run, or fork it")
    if isinstance(resume_from, str) and resume_from.strip().lower() == "checkpoint":
        from_checkpoint = True
        policy = policy or "must"
    elif resume_from is not None:
        source, rewind_to = _step_reference(resume_from, "resume_from")
        if source is not None:
            if id is not None and id != source:
                raise InvalidArgument(f"resume_from names run {source!r} but id={id!r}: they must agree")
            id = source
        policy = policy or "must"
    if fork_from is not None:
        source, at = _step_reference(fork_from, "fork_from")
        if source is None:
            raise ForkWithoutStep(f"fork_from={fork_from!r} needs the run to fork: fork_from='{{run_id}}?_step={at}'")
        fork = (source, at)

    native = _runstore.init(
        store_dir,
        id=id,
        resume=policy,
        project=project,
        name=name,
        notes=notes,
        tags=[str(tag) for tag in tags],
        config_json=config_json(loaded) if loaded else None,
        resume_from=rewind_to,
        resume_from_checkpoint=from_checkpoint,
        fork=fork,
        every_log=durability == "every_log",
        drop_regressions=on_step_regression == "drop",
        system_metrics=system_metrics,
    )
    for warning in native.warnings:
        # A CPU-only machine is no mistake: that note is kept with the run (ApiRun.system_notes).
        if warning.startswith("system metrics:"):
            continue
        warnings.warn(f"runstore: {warning}", stacklevel=2)
    if native.resumed or fork is not None:
        # The run's stored record, merged with this init's: what W&B shows a resumed run.
        stored = _runstore.open_run(store_dir, native.id).info()
        project, name, notes = stored["project"], stored["name"], stored["notes"]
        tags, loaded = list(stored["tags"]), json.loads(stored["config_json"])
    run = Run(
        native,
        dir=store_dir,
        project=project,
        name=name,
        notes=notes,
        tags=list(tags),
        config=loaded,
        group=group,
        job_type=job_type,
        on_finish=_forget,
    )
    _live.append(run)
    return run


def resolve_dir(dir: Union[str, "os.PathLike[str]", None]) -> str:
    """The store directory: ``dir``, else ``RUNSTORE_DIR``, else ``WANDB_DIR``, else ``./.runstore``."""
    return os.fspath(dir) if dir is not None else (_env("RUNSTORE_DIR", "WANDB_DIR") or DEFAULT_DIR)


def _forget(run: Any) -> None:
    if run in _live:
        _live.remove(run)


def current() -> Optional[Run]:
    """The run most recently started in this process and not finished, or ``None``."""
    return _live[-1] if _live else None


def require() -> Run:
    run = current()
    if run is None:
        raise NoActiveRun("no run is live in this process: call runstore.init() first")
    return run


def _record_uncaught(kind: Any, error: BaseException, traceback: Any) -> None:
    _uncaught.append(error)
    _previous_hook(kind, error, traceback)


_previous_hook = sys.excepthook
sys.excepthook = _record_uncaught


@atexit.register
def _finish_at_exit() -> None:
    """As W&B: a run still live when the interpreter exits is finished, failed after an
    uncaught exception. (A killed process leaves it crashed, and resumable.)"""
    code = 1 if _uncaught else 0
    for run in list(reversed(_live)):
        try:
            run.finish(code)
        except Exception:  # noqa: BLE001 - nothing is left to report to at exit
            pass
