"""The integrations against the real frameworks: a tiny model trained for 60 steps on CPU by
Hugging Face's Trainer and by Lightning, normally, and killed (SIGKILL) after a checkpoint
and more logged steps, then restarted from that checkpoint.

Skipped when the framework is not installed, unless RUNSTORE_REQUIRE_FRAMEWORKS=1 (CI).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import history

import runstore

FRAMEWORKS = Path(__file__).resolve().parent / "frameworks"
REQUIRED = os.environ.get("RUNSTORE_REQUIRE_FRAMEWORKS") == "1"


def framework(module: str):
    if REQUIRED:
        return __import__(module)
    return pytest.importorskip(module)


def train(script: str, store: str, workdir: str, mode: str, cwd: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(
        [sys.executable, str(FRAMEWORKS / script), store, workdir, mode],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=cwd,
    )


def check(result: subprocess.CompletedProcess, code: int = 0) -> None:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"


def checkpoints(run) -> list:
    """(step, path, exists, attempt, branch) of each checkpoint the integration recorded."""
    return [(c["step"], c["path"], c["exists"], c["attempt"], c["branch"]) for c in run.checkpoints]


def lightning_checkpoints(root: str, saves) -> list:
    """What RunstoreLogger records for ModelCheckpoint(every_n_train_steps=20, save_last=True):
    at each save, the step file and then last.ckpt, at global_step - 1."""
    directory = Path(root, "ckpt")
    recorded = []
    for global_step, attempt in saves:
        for name in (f"epoch=0-step={global_step}.ckpt", "last.ckpt"):
            recorded.append((global_step - 1, str(directory / name), True, attempt, None))
    return recorded


# --- Hugging Face Trainer ----------------------------------------------------------------------


def test_trainer_logs_each_step_once_and_finishes(tmp_path):
    framework("transformers")
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    check(train("hf_train.py", store, out, "fresh", str(tmp_path)))
    id = Path(out, "runstore-run-id").read_text()
    run = runstore.Api(store).run(id)
    assert run.state == "finished" and run.project == "hf"
    rows = history(store, id)
    assert [step for step, _ in rows] == list(range(1, 61))
    assert all("train/loss" in row for _, row in rows)
    assert "train/train_runtime" in rows[-1][1]  # the end-of-training numbers merge into step 60
    assert run.config["max_steps"] == 60 and run.config["save_steps"] == 20
    # on_save recorded each checkpoint directory at its step.
    assert checkpoints(run) == [(step, str(Path(out, f"checkpoint-{step}")), True, 1, None) for step in (20, 40, 60)]


def test_trainer_started_afresh_in_a_used_output_dir_starts_a_new_run_and_leaves_the_old_one(tmp_path):
    framework("transformers")
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    check(train("hf_train.py", store, out, "kill", str(tmp_path)), -signal.SIGKILL)
    first = Path(out, "runstore-run-id").read_text()
    for checkpoint in ("checkpoint-20", "checkpoint-40"):
        __import__("shutil").rmtree(Path(out, checkpoint))
    check(train("hf_train.py", store, out, "fresh", str(tmp_path)))
    second = Path(out, "runstore-run-id").read_text()
    assert second != first
    api = runstore.Api(store)
    assert (api.run(first).state, len(api.run(first).attempts)) == ("crashed", 1)
    assert api.run(second).state == "finished"
    assert [step for step, _ in history(store, second)] == list(range(1, 61))


def test_trainer_killed_after_a_checkpoint_resumes_from_it_with_each_step_once(tmp_path):
    framework("transformers")
    store, out = str(tmp_path / "store"), str(tmp_path / "out")
    killed = train("hf_train.py", store, out, "kill", str(tmp_path))
    check(killed, -signal.SIGKILL)
    id = Path(out, "runstore-run-id").read_text()
    assert runstore.Api(store).run(id).state == "crashed"
    assert [step for step, _ in history(store, id)] == list(range(1, 51))
    assert sorted(os.listdir(out)) == ["checkpoint-20", "checkpoint-40", "runstore-run-id"]

    resumed = train("hf_train.py", store, out, "resume", str(tmp_path))
    check(resumed)
    run = runstore.Api(store).run(id)
    assert run.state == "finished"
    assert [attempt["outcome"] for attempt in run.attempts] == ["crashed", "finished"]
    # The live history holds each step once: 1..40 from the first attempt, 41..60 from the second.
    rows = history(store, id)
    assert [step for step, _ in rows] == list(range(1, 61))
    [branch] = run.branches
    assert (branch["rewound_to"], branch["first_step"], branch["last_step"], branch["rows"]) == (40, 41, 50, 10)
    assert branch["by_attempt"] == 2
    archived = history(store, id, branch=branch["id"])
    assert [step for step, _ in archived] == list(range(41, 51))
    # The restarted training repeats the same steps from the same checkpoint: same losses.
    live = dict(rows)
    assert all(live[step]["train/loss"] == pytest.approx(row["train/loss"], rel=1e-4) for step, row in archived)
    # The first attempt's checkpoints stay resume points (the rewind kept their steps); the
    # second attempt recorded checkpoint-60.
    assert checkpoints(run) == [
        (step, str(Path(out, f"checkpoint-{step}")), True, attempt, None) for step, attempt in ((20, 1), (40, 1), (60, 2))
    ]


# --- Lightning -----------------------------------------------------------------------------------


def test_lightning_logs_each_step_once_and_finishes(tmp_path):
    framework("lightning")
    store, root = str(tmp_path / "store"), str(tmp_path / "root")
    check(train("lightning_train.py", store, root, "fresh", str(tmp_path)))
    run = runstore.Api(store).run("lightning-run")
    assert run.state == "finished" and run.project == "pl"
    rows = history(store, "lightning-run")
    assert [step for step, _ in rows] == list(range(60))
    assert all("train_loss" in row for _, row in rows)
    assert run.config == {"lr": 0.01, "hidden": 8}
    # after_save_checkpoint recorded each file at global_step - 1, the last step it covers.
    assert checkpoints(run) == lightning_checkpoints(root, [(20, 1), (40, 1), (60, 1)])


def test_lightning_killed_after_a_checkpoint_resumes_from_it_with_each_step_once(tmp_path):
    framework("lightning")
    store, root = str(tmp_path / "store"), str(tmp_path / "root")
    check(train("lightning_train.py", store, root, "kill", str(tmp_path)), -signal.SIGKILL)
    assert runstore.Api(store).run("lightning-run").state == "crashed"
    assert [step for step, _ in history(store, "lightning-run")] == list(range(50))

    check(train("lightning_train.py", store, root, "resume", str(tmp_path)))
    run = runstore.Api(store).run("lightning-run")
    assert run.state == "finished"
    assert [attempt["outcome"] for attempt in run.attempts] == ["crashed", "finished"]
    rows = history(store, "lightning-run")
    assert [step for step, _ in rows] == list(range(60))
    [branch] = run.branches
    # The step-40 checkpoint covers logged steps 0..39; 40..49 of the dead attempt are archived.
    assert (branch["rewound_to"], branch["first_step"], branch["last_step"], branch["rows"]) == (39, 40, 49, 10)
    archived = history(store, "lightning-run", branch=branch["id"])
    assert [step for step, _ in archived] == list(range(40, 50))
    assert checkpoints(run) == lightning_checkpoints(root, [(20, 1), (40, 1), (60, 2)])
