"""System metrics: sampled on a background thread against time, on by default as in W&B,
switched by ``settings`` (runstore's key and W&B's) and ``RUNSTORE_SYSTEM_METRICS``, read back
with ``ApiRun.system_metrics()`` and ``history(stream="system")``."""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import pytest

import runstore
from runstore import _init


def train(store_dir, id, seconds=0.6, **kwargs):
    """A run that logs for about ``seconds``, then finishes; its stored view."""
    run = runstore.init(id=id, dir=store_dir, **kwargs)
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < seconds:
        run.log({"loss": 1.0 / (step + 1)})
        step += 1
        time.sleep(0.01)
    run.finish()
    return runstore.Api(store_dir).run(id)


def test_samples_are_taken_at_the_interval_the_settings_give(store_dir):
    stored = train(store_dir, "r", settings={"system_metrics": 0.1})
    system = stored.system_metrics()
    assert "system/cpu_percent" in system and "system/memory_rss_mib" in system
    times, values = system["system/memory_rss_mib"]
    assert isinstance(times, np.ndarray) and len(times) == len(values)
    assert len(times) >= 2, "a 0.1 s interval over 0.6 s takes several samples"
    assert np.all(np.diff(times) > 0)
    assert np.all(values > 0), "a Python process holds memory"
    # Sampled within the run's life, on the wall clock.
    assert stored.created_at - 1 <= times[0] <= time.time()


def test_system_metrics_never_become_steps_or_step_metrics(store_dir):
    stored = train(store_dir, "r", settings={"system_metrics": 0.1})
    assert stored.metrics() == ["loss"]
    assert all(set(row) <= {"_step", "loss"} for row in stored.scan_history())
    assert stored.last_step == len(list(stored.scan_history())) - 1


def test_history_of_the_system_stream_has_a_row_per_sampling_time(store_dir):
    stored = train(store_dir, "r", settings={"system_metrics": 0.1})
    frame = stored.history(stream="system", samples=None)
    assert "_timestamp" in frame.columns and "system/cpu_percent" in frame.columns
    assert frame["_timestamp"].is_monotonic_increasing
    assert len(frame) == len(stored.system_metrics()["system/cpu_percent"][0])
    # W&B's name for the stream.
    rows = stored.history(stream="events", keys=["system/memory_rss_mib"], pandas=False, samples=None)
    assert rows and all(set(row) == {"_timestamp", "system/memory_rss_mib"} for row in rows)
    with pytest.raises(ValueError):
        stored.history(stream="nonsense")


@pytest.mark.parametrize(
    "settings",
    [{"system_metrics": False}, {"system_metrics": 0}, {"x_disable_stats": True}, {"_disable_stats": True}],
)
def test_settings_turn_system_metrics_off_even_when_the_environment_turns_them_on(store_dir, monkeypatch, settings):
    monkeypatch.setenv("RUNSTORE_SYSTEM_METRICS", "0.1")
    stored = train(store_dir, "r", settings=settings)
    assert stored.system_metrics() == {}


def test_wandb_sampling_interval_setting_is_read(store_dir):
    stored = train(store_dir, "r", settings={"x_stats_sampling_interval": 0.1})
    assert len(stored.system_metrics()["system/cpu_percent"][0]) >= 2


class Settings:
    """A ``wandb.Settings``-like object: settings as attributes."""

    x_stats_sampling_interval = 0.1
    mode = "offline"


def test_a_settings_object_is_read_by_attribute_and_its_others_are_not_warned_of(store_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = train(store_dir, "r", settings=Settings())
    assert [str(warning.message) for warning in caught] == []
    assert len(stored.system_metrics()["system/cpu_percent"][0]) >= 2


def test_the_environment_decides_when_settings_say_nothing(store_dir, monkeypatch):
    monkeypatch.setenv("RUNSTORE_SYSTEM_METRICS", "0.1")
    assert len(train(store_dir, "on").system_metrics()["system/cpu_percent"][0]) >= 2
    monkeypatch.setenv("RUNSTORE_SYSTEM_METRICS", "0")
    assert train(store_dir, "off").system_metrics() == {}


def test_the_default_is_on_every_ten_seconds():
    assert _init._system_metrics(None) == runstore._init.SYSTEM_METRICS_SECONDS == 10.0
    assert _init._system_metrics({"system_metrics": True}) == 10.0


@pytest.mark.parametrize("value", [-1, "often", float("nan"), float("inf")])
def test_a_bad_interval_is_refused_before_anything_is_stored(store_dir, value):
    with pytest.raises(runstore.InvalidArgument):
        runstore.init(id="r", dir=store_dir, settings={"system_metrics": value})
    assert not os.path.exists(store_dir), "refused before the store is opened"


def test_unknown_settings_keys_are_named_in_one_warning(store_dir):
    with pytest.warns(UserWarning, match=r"settings\['console'\]"):
        run = runstore.init(id="r", dir=store_dir, settings={"console": "off", "system_metrics": False})
    run.finish()


def test_a_machine_without_gpus_is_noted_with_the_run_not_warned_of(store_dir):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = train(store_dir, "r", seconds=0.2, settings={"system_metrics": 0.1})
    assert [str(warning.message) for warning in caught] == []
    gpu_series = [name for name in stored.system_metrics() if name.startswith("system/gpu")]
    if gpu_series:
        assert stored.system_notes == []
    else:
        assert len(stored.system_notes) == 1 and "no GPU metrics" in stored.system_notes[0]
