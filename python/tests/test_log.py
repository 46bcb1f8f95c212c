"""log: W&B's step and commit rules, the values it takes, and what it stores."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from conftest import history

import runstore


def test_log_without_step_commits_each_call_at_the_next_step(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    for value in range(3):
        run.log({"loss": float(value)})
    assert run.step == 3
    run.finish()
    assert history(store_dir, "r") == [(0, {"loss": 0.0}), (1, {"loss": 1.0}), (2, {"loss": 2.0})]


def test_commit_false_accumulates_into_the_current_step(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0}, commit=False)
    run.log({"b": 2.0}, commit=False)
    assert run.step == 0
    run.log({"c": 3.0})
    assert run.step == 1
    run.finish()
    assert history(store_dir, "r") == [(0, {"a": 1.0, "b": 2.0, "c": 3.0})]


def test_an_explicit_step_accumulates_until_a_later_step_or_a_log_without_step(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0}, step=5)
    run.log({"b": 2.0}, step=5)
    assert run.step == 5
    run.log({"a": 3.0}, step=7)
    run.log({"c": 4.0})  # commits step 7
    assert run.step == 8
    run.log({"a": 5.0}, step=8, commit=True)
    assert run.step == 9
    run.finish()
    assert history(store_dir, "r") == [(5, {"a": 1.0, "b": 2.0}), (7, {"a": 3.0, "c": 4.0}), (8, {"a": 5.0})]


def test_a_step_before_the_current_one_raises_step_regression_and_stores_nothing(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0}, step=10, commit=True)
    with pytest.raises(runstore.StepRegression) as raised:
        run.log({"a": 2.0}, step=3)
    assert (raised.value.requested, raised.value.next, raised.value.id) == (3, 11, "r")
    assert isinstance(raised.value, runstore.Error)
    run.finish()
    assert history(store_dir, "r") == [(10, {"a": 1.0})]


def test_drop_mode_drops_a_regressed_row_with_a_warning_and_counts_it(store_dir):
    run = runstore.init(id="r", dir=store_dir, on_step_regression="drop")
    run.log({"a": 1.0}, step=10, commit=True)
    with pytest.warns(UserWarning, match="dropped a row logged at step 3"):
        run.log({"a": 2.0}, step=3)
    assert run.dropped_rows == 1
    run.log({"a": 3.0})
    run.finish()
    assert history(store_dir, "r") == [(10, {"a": 1.0}), (11, {"a": 3.0})]
    assert runstore.Api(store_dir).run("r").summary[runstore._run.DROPPED_KEY] == 1.0


def test_nested_dicts_are_flattened_with_slashes(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"train": {"loss": 0.5, "opt": {"lr": 1e-3}}, "epoch": 1})
    run.finish()
    assert history(store_dir, "r") == [(0, {"train/loss": 0.5, "train/opt/lr": 1e-3, "epoch": 1.0})]


def test_python_numpy_and_torch_numbers_are_stored(store_dir):
    torch = pytest.importorskip("torch")
    run = runstore.init(id="r", dir=store_dir)
    run.log(
        {
            "int": 7,
            "big": 2**70,
            "bool": True,
            "np32": np.float32(0.5),
            "np_int": np.int64(-3),
            "array0d": np.array(2.5),
            "tensor0d": torch.tensor(1.25),
            "grad": (torch.ones(2, requires_grad=True) * 2).sum(),
        }
    )
    run.finish()
    [(step, row)] = history(store_dir, "r")
    assert row == {
        "int": 7.0,
        "big": float(2**70),
        "bool": 1.0,
        "np32": 0.5,
        "np_int": -3.0,
        "array0d": 2.5,
        "tensor0d": 1.25,
        "grad": 4.0,
    }


def test_nan_and_infinities_are_stored_bit_exact(store_dir):
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    values = {"nan": float("nan"), "payload": payload_nan, "inf": math.inf, "-inf": -math.inf, "-0": -0.0}
    run = runstore.init(id="r", dir=store_dir)
    run.log(values)
    run.finish()
    [(_, row)] = history(store_dir, "r")
    bits = lambda value: struct.pack("<d", value)  # noqa: E731
    assert {name: bits(value) for name, value in row.items()} == {name: bits(value) for name, value in values.items()}
    steps, stored = runstore.Api(store_dir).run("r").series("payload")
    assert bits(stored[0]) == bits(payload_nan)


def test_many_rows_with_a_stable_key_set_round_trip(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    for step in range(20_000):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 20_000, "lr": 1e-3, "gn": float(step % 7)})
    run.finish()
    steps, values = runstore.Api(store_dir).run("r").series("loss")
    assert steps.tolist() == list(range(20_000))
    assert np.array_equal(values, 1.0 / (np.arange(20_000) + 1))


def test_summary_set_by_hand_and_define_metric_rules(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.define_metric("loss", summary="min")
    for loss in (0.5, 0.2, 0.9):
        run.log({"loss": loss, "acc": 1 - loss})
    run.summary["best_acc"] = 0.8
    run.summary.update({"epochs": 3})
    assert run.summary["loss"] == 0.2
    run.finish()
    summary = runstore.Api(store_dir).run("r").summary
    assert summary == {"loss": 0.2, "acc": 1 - 0.9, "best_acc": 0.8, "epochs": 3.0}


def test_config_changes_after_init_are_stored(store_dir):
    run = runstore.init(id="r", dir=store_dir, config={"lr": 0.1, "model": {"depth": 2}})
    run.config.batch = 32
    run.config["seed"] = 7
    run.config.update({"model": {"width": 64}})
    assert run.config.lr == 0.1 and run.config["batch"] == 32
    run.finish()
    assert runstore.Api(store_dir).run("r").config == {
        "lr": 0.1,
        "model": {"depth": 2, "width": 64},
        "batch": 32,
        "seed": 7,
    }


def test_module_level_calls_act_on_the_current_run(store_dir):
    assert runstore.run is None
    run = runstore.init(id="r", dir=store_dir, config={"lr": 0.5})
    assert runstore.run is run
    assert runstore.config.lr == 0.5
    runstore.log({"a": 1.0})
    runstore.summary["x"] = 2.0
    runstore.finish()
    assert runstore.run is None
    assert runstore.Api(store_dir).run("r").state == "finished"


def test_the_context_manager_finishes_failed_on_an_exception(store_dir):
    with runstore.init(id="ok", dir=store_dir) as run:
        run.log({"a": 1.0})
    with pytest.raises(RuntimeError):
        with runstore.init(id="bad", dir=store_dir) as run:
            run.log({"a": 1.0})
            raise RuntimeError("boom")
    api = runstore.Api(store_dir)
    assert (api.run("ok").state, api.run("bad").state) == ("finished", "failed")


def test_mark_preempting_then_a_nonzero_exit_ends_preempted(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    run.log({"a": 1.0})
    runstore.mark_preempting()
    assert runstore.Api(store_dir).run("r").state == "preempting"
    run.finish(143)
    assert runstore.Api(store_dir).run("r").state == "preempted"


def test_wandb_methods_without_offline_meaning_warn_once_and_do_nothing(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    with pytest.warns(UserWarning, match="watch has no meaning offline"):
        run.watch(object())
    run.log_artifact("x")
    run.finish()


def test_disabled_mode_writes_nothing(store_dir):
    import os

    run = runstore.init(id="r", dir=store_dir, mode="disabled", config={"a": 1})
    run.log({"a": 1.0})
    runstore.log({"a": 2.0})
    assert runstore.run is run and run.disabled and run.config.a == 1
    runstore.finish()
    assert runstore.run is None
    assert not os.path.exists(store_dir)


def test_threads_logging_to_one_run_each_get_their_rows_stored(store_dir):
    import threading

    run = runstore.init(id="r", dir=store_dir)
    errors = []

    def worker(name):
        try:
            for _ in range(2_000):
                run.log({name: 1.0})
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"t{index}",)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert run.step == 8_000
    run.finish()
    rows = history(store_dir, "r")
    assert [step for step, _ in rows] == list(range(8_000))
    assert sorted(name for _, row in rows for name in row) == sorted(f"t{index}" for index in range(4) for _ in range(2_000))
