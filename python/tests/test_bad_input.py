"""Bad input: each a clear exception, a subclass of runstore.Error, and nothing written."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import history

import runstore


@pytest.fixture
def run_with_one_row(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0})
    return run


def assert_unchanged(run, store_dir):
    assert run.step == 1
    run.flush()
    assert history(store_dir, "r") == [(0, {"a": 1.0})]


@pytest.mark.parametrize(
    "value, kind",
    [
        ("0.5", "str"),
        (b"1", "bytes"),
        (None, "NoneType"),
        ([1.0], "list"),
        (np.array([1.0, 2.0]), "ndarray"),
        (1 + 2j, "complex"),
        (object(), "object"),
    ],
)
def test_a_value_that_is_not_a_number_is_refused_and_nothing_of_the_row_is_written(run_with_one_row, store_dir, value, kind):
    with pytest.raises(runstore.InvalidValue, match=f'value of "bad" is of type {kind}') as raised:
        run_with_one_row.log({"good": 2.0, "bad": value})
    assert isinstance(raised.value, runstore.Error) and isinstance(raised.value, TypeError)
    assert_unchanged(run_with_one_row, store_dir)


def test_an_array_with_dimensions_is_refused_with_a_hint(run_with_one_row, store_dir):
    with pytest.raises(runstore.InvalidValue, match=r"log a single number, such as x.mean\(\).item\(\)"):
        run_with_one_row.log({"w": np.ones((2, 2))})
    assert_unchanged(run_with_one_row, store_dir)


@pytest.mark.parametrize("key", [1, 2.5, ("a",), None])
def test_a_key_that_is_not_a_str_is_refused(run_with_one_row, store_dir, key):
    with pytest.raises(runstore.InvalidKey, match="metric names must be str"):
        run_with_one_row.log({"good": 2.0, key: 1.0})
    with pytest.raises(runstore.InvalidKey):
        run_with_one_row.log({"nested": {key: 1.0}})
    assert_unchanged(run_with_one_row, store_dir)


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 300])
def test_an_invalid_metric_name_is_refused(run_with_one_row, store_dir, name):
    with pytest.raises(runstore.InvalidMetricName) as raised:
        run_with_one_row.log({"good": 2.0, name: 1.0})
    # The error names the metric (a long name shortened).
    assert name.startswith(raised.value.name) and len(raised.value.name) == min(len(name), 80)
    assert_unchanged(run_with_one_row, store_dir)


def test_log_of_something_other_than_a_dict_is_refused(run_with_one_row, store_dir):
    with pytest.raises(runstore.InvalidValue, match="log takes a dict"):
        run_with_one_row.log([("a", 1.0)])
    assert_unchanged(run_with_one_row, store_dir)


def test_a_negative_step_is_refused(run_with_one_row, store_dir):
    with pytest.raises(runstore.InvalidStep):
        run_with_one_row.log({"a": 1.0}, step=-1)
    assert_unchanged(run_with_one_row, store_dir)


def test_a_dict_that_contains_itself_is_refused(run_with_one_row, store_dir):
    loop: dict = {}
    loop["again"] = loop
    with pytest.raises(runstore.InvalidValue, match="nested deeper"):
        run_with_one_row.log(loop)
    assert_unchanged(run_with_one_row, store_dir)


def test_a_summary_value_that_is_not_a_number_is_refused(run_with_one_row, store_dir):
    with pytest.raises(runstore.InvalidValue):
        run_with_one_row.summary["best"] = "high"
    run_with_one_row.finish()
    assert "best" not in runstore.Api(store_dir).run("r").summary


@pytest.mark.parametrize("bad_id", ["", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_a_bad_id_is_refused_and_nothing_is_created(store_dir, bad_id):
    with pytest.raises(runstore.InvalidRunId) as raised:
        runstore.init(id=bad_id, dir=store_dir)
    assert raised.value.id == bad_id and isinstance(raised.value, ValueError)
    assert not os.path.exists(store_dir)
    assert runstore.run is None


def test_an_id_that_is_not_a_str_is_refused(store_dir):
    with pytest.raises(runstore.InvalidRunId):
        runstore.init(id=12, dir=store_dir)
    assert not os.path.exists(store_dir)


def test_a_run_used_after_finish_raises_run_finished(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0})
    run.finish()
    for call in (lambda: run.log({"a": 2.0}), run.flush, run.mark_preempting, run.finish, lambda: run.rewind(0)):
        with pytest.raises(runstore.RunFinished, match='run "r" is finished'):
            call()
    with pytest.raises(runstore.RunFinished):
        run.config.lr = 1
    assert history(store_dir, "r") == [(0, {"a": 1.0})]
    assert runstore.Api(store_dir).run("r").attempts[0]["outcome"] == "finished"


def test_a_fork_without_a_step_is_refused(store_dir):
    runstore.init(id="base", dir=store_dir).finish()
    for fork_from in ("base", 3):
        with pytest.raises(runstore.ForkWithoutStep):
            runstore.init(id="child", dir=store_dir, fork_from=fork_from)
    assert [run.id for run in runstore.Api(store_dir).runs()] == ["base"]


def test_init_twice_without_reinit_is_refused_and_the_first_run_goes_on(store_dir):
    first = runstore.init(id="one", dir=store_dir)
    with pytest.raises(runstore.AlreadyInitialized, match="run 'one' is live") as raised:
        runstore.init(id="two", dir=store_dir)
    assert raised.value.id == "one"
    assert runstore.run is first
    first.log({"a": 1.0})
    first.finish()
    assert [run.id for run in runstore.Api(store_dir).runs()] == ["one"]


@pytest.mark.parametrize("resume", ["sometimes", 3, "MUSTN'T"])
def test_a_bad_resume_policy_is_refused(store_dir, resume):
    with pytest.raises(runstore.InvalidResume):
        runstore.init(id="r", dir=store_dir, resume=resume)
    assert not os.path.exists(store_dir)


def test_a_bad_resume_policy_in_the_environment_is_refused(store_dir, monkeypatch):
    monkeypatch.setenv("RUNSTORE_RESUME", "sometimes")
    with pytest.raises(runstore.InvalidEnvironment) as raised:
        runstore.init(id="r", dir=store_dir)
    assert raised.value.variable == "RUNSTORE_RESUME"


def test_a_config_that_is_not_a_mapping_is_refused(store_dir):
    with pytest.raises(runstore.InvalidArgument):
        runstore.init(id="r", dir=store_dir, config=[1, 2])
    assert not os.path.exists(store_dir)
