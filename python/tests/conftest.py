"""Shared fixtures: a fresh store directory, an environment without RUNSTORE_*/WANDB_*
variables, and no run left live between tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runstore
from runstore import _init

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for name in list(os.environ):
        if name.startswith(("RUNSTORE_", "WANDB_")):
            monkeypatch.delenv(name)
    # `auto` keeps its pointer in the working directory.
    monkeypatch.chdir(tmp_path)
    yield
    for run in list(_init._live):
        run.finish()


@pytest.fixture
def store_dir(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def history(store_dir: str, id: str, branch=None):
    """(step, {name: value}) of every row, from a fresh reader."""
    return [(row.pop("_step"), row) for row in runstore.Api(store_dir).run(id).scan_history(branch=branch)]


def python_child(code: str, **popen) -> subprocess.Popen:
    """A Python child process running `code` (dedented) with this interpreter."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], **popen)
