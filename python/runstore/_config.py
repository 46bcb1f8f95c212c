"""A run's config and summary: dict-like objects that write through to the store."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional

if TYPE_CHECKING:
    from ._run import Run


def to_jsonable(value: Any) -> Any:
    """What ``json.dumps`` makes of config values it does not know: numbers of numpy and torch
    through ``.item()``, containers of them, anything else as its ``str``."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            return item()
        except Exception:  # noqa: BLE001 - fall back to the text form below
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def config_json(config: Mapping[str, Any]) -> str:
    """The config as JSON text for the store."""
    return json.dumps(dict(config), default=to_jsonable, allow_nan=True)


class Config:
    """``run.config``: item and attribute access (``config["lr"]``, ``config.lr``), ``update``.

    Changes after ``init`` are merged into the stored config at once.
    """

    def __init__(self, values: Optional[Dict[str, Any]] = None, store: Optional[Callable[[Dict[str, Any]], None]] = None) -> None:
        object.__setattr__(self, "_values", dict(values or {}))
        object.__setattr__(self, "_store", store)

    def _changed(self, changes: Dict[str, Any]) -> None:
        self._values.update(changes)
        if self._store is not None:
            self._store(changes)

    def update(self, values: Any = None, allow_val_change: Optional[bool] = None, **more: Any) -> None:
        """Merges ``values`` (a mapping, an ``argparse.Namespace``) and keyword arguments."""
        changes: Dict[str, Any] = {}
        if values is not None:
            if not isinstance(values, Mapping):
                values = vars(values)
            changes.update(values)
        changes.update(more)
        if changes:
            self._changed(changes)

    def setdefaults(self, values: Mapping[str, Any]) -> None:
        """Sets the keys of ``values`` that the config does not have yet."""
        missing = {key: value for key, value in values.items() if key not in self._values}
        if missing:
            self._changed(missing)

    def as_dict(self) -> Dict[str, Any]:
        """A copy of the config as a plain dict."""
        return dict(self._values)

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def keys(self):  # noqa: ANN201 - dict views
        return self._values.keys()

    def items(self):  # noqa: ANN201
        return self._values.items()

    def values(self):  # noqa: ANN201
        return self._values.values()

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._changed({key: value})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self._changed({key: value})

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


class Summary:
    """``run.summary``: the last logged value of each metric, and values set by hand
    (``summary["best_acc"] = 0.97``, ``summary.update({...})``), read from the store."""

    def __init__(self, run: "Run") -> None:
        self._run = run

    def _read(self) -> Dict[str, float]:
        return self._run._read_summary()

    def __getitem__(self, key: str) -> float:
        return self._read()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._run._set_summary(key, value)

    def update(self, values: Mapping[str, Any]) -> None:
        """Sets several summary values."""
        for key, value in values.items():
            self._run._set_summary(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def keys(self):  # noqa: ANN201
        return self._read().keys()

    def items(self):  # noqa: ANN201
        return self._read().items()

    def __contains__(self, key: object) -> bool:
        return key in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def __repr__(self) -> str:
        return f"Summary({self._read()!r})"
