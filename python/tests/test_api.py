"""Reading: Api().run(...), runs(...), history, scan_history, series."""

from __future__ import annotations

import numpy as np
import pytest

import runstore


@pytest.fixture
def logged(store_dir):
    run = runstore.init(id="r", project="p", dir=store_dir, config={"lr": 0.1}, tags=["t"], notes="n")
    for step in range(1000):
        data = {"loss": 1.0 / (step + 1)}
        if step % 10 == 0:
            data["eval/acc"] = step / 1000
        run.log(data)
    run.finish()
    return runstore.Api(store_dir)


def test_a_run_is_found_by_id_or_by_path(logged):
    for path in ("r", "p/r", "entity/p/r"):
        run = logged.run(path)
        assert (run.id, run.project, run.state, run.config, run.tags, run.notes) == (
            "r",
            "p",
            "finished",
            {"lr": 0.1},
            ["t"],
            "n",
        )
    with pytest.raises(runstore.RunNotFound):
        logged.run("missing")


def test_history_is_a_dataframe_with_nan_where_a_row_lacks_a_metric(logged):
    frame = logged.run("r").history(samples=None)
    assert list(frame.columns) == ["_step", "loss", "eval/acc"]
    assert frame["_step"].tolist() == list(range(1000))
    assert np.isnan(frame["eval/acc"][1]) and frame["eval/acc"][10] == 0.01


def test_history_with_keys_keeps_the_rows_that_have_them(logged):
    frame = logged.run("r").history(keys=["eval/acc"], samples=None)
    assert frame["_step"].tolist() == list(range(0, 1000, 10))
    rows = logged.run("r").history(keys=["eval/acc", "loss"], samples=None, pandas=False)
    assert [row["_step"] for row in rows] == list(range(0, 1000, 10))


def test_history_with_keys_keeps_a_row_whose_value_is_nan(store_dir):
    run = runstore.init(id="n", dir=store_dir)
    run.log({"a": float("nan")})
    run.log({"b": 1.0})
    run.finish()
    for pandas in (True, False):
        rows = runstore.Api(store_dir).run("n").history(keys=["a"], samples=None, pandas=pandas)
        assert len(rows) == 1


def test_history_samples_evenly_keeping_the_first_and_last_row(logged):
    frame = logged.run("r").history()  # W&B's default: 500 samples
    assert len(frame) == 500 and frame["_step"].iloc[0] == 0 and frame["_step"].iloc[-1] == 999
    rows = logged.run("r").history(samples=3, pandas=False)
    assert [row["_step"] for row in rows] == [0, 500, 999]


def test_scan_history_streams_every_row_with_its_step(logged):
    rows = list(logged.run("r").scan_history(page_size=7))
    assert len(rows) == 1000 and rows[10] == {"loss": 1.0 / 11, "eval/acc": 0.01, "_step": 10}
    assert [row["_step"] for row in logged.run("r").scan_history(min_step=995)] == [995, 996, 997, 998, 999]
    assert [row["_step"] for row in logged.run("r").scan_history(keys=["eval/acc"], max_step=30)] == [0, 10, 20, 30]


def test_series_gives_numpy_arrays(logged):
    steps, values = logged.run("r").series("eval/acc")
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == list(range(0, 1000, 10))
    assert np.array_equal(values, np.arange(0, 1000, 10) / 1000)
    empty_steps, empty_values = logged.run("r").series("never-logged")
    assert len(empty_steps) == len(empty_values) == 0


def test_runs_filters_by_project_state_and_config(store_dir):
    for id, project, lr, code in (("a", "x", 0.1, 0), ("b", "x", 0.2, 1), ("c", "y", 0.1, 0)):
        run = runstore.init(id=id, project=project, dir=store_dir, config={"lr": lr})
        run.log({"a": 1.0})
        run.finish(code)
    api = runstore.Api(store_dir)
    assert [run.id for run in api.runs()] == ["a", "b", "c"]
    assert [run.id for run in api.runs("ent/x")] == ["a", "b"]
    assert [run.id for run in api.runs(state="failed")] == ["b"]
    assert [run.id for run in api.runs(filters={"config.lr": 0.1})] == ["a", "c"]
    assert [run.id for run in api.runs("x", filters={"config": {"lr": 0.1}, "state": "finished"})] == ["a"]


def test_a_live_run_is_read_while_it_is_written(store_dir):
    run = runstore.init(id="live", dir=store_dir)
    run.log({"a": 1.0})
    run.flush()
    stored = runstore.Api(store_dir).run("live")
    assert stored.state == "running" and [row["_step"] for row in stored.scan_history()] == [0]
    run.finish()
