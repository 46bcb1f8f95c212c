"""The docstring examples of the package run."""

from __future__ import annotations

import doctest

import runstore


def test_the_package_docstring_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(runstore, extraglobs={"store_dir": str(tmp_path / "store")}, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
