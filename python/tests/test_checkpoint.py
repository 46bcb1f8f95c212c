"""Checkpoints: run.checkpoint records one with the rows it covers; init(resume_from="checkpoint")
after a SIGKILL rewinds to the newest one still on disk; Api().run(id).checkpoints lists them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import history, python_child

import runstore


def test_a_recorded_checkpoint_is_listed_with_its_step_path_and_size(store_dir, tmp_path):
    path = tmp_path / "step-9.pt"
    path.write_bytes(b"weights")
    run = runstore.init(id="c", dir=store_dir)
    for step in range(10):
        run.log({"loss": 1.0 / (step + 1)})
    recorded = run.checkpoint(path)
    assert (recorded["step"], recorded["path"], recorded["size"], recorded["attempt"]) == (9, str(path), 7, 1)
    (tmp_path / "step-4").mkdir()
    (tmp_path / "step-4" / "model.bin").write_bytes(b"abc")
    run.checkpoint(tmp_path / "step-4", step=4)  # a directory, saved asynchronously
    run.finish()
    checkpoints = runstore.Api(store_dir).run("c").checkpoints
    assert [(c["step"], c["path"], c["exists"], c["size"], c["attempt"], c["branch"]) for c in checkpoints] == [
        (9, str(path), True, 7, 1, None),
        (4, str(tmp_path / "step-4"), True, 3, 1, None),
    ]
    assert all(isinstance(c["time"], float) and c["time"] > 0 for c in checkpoints)


def test_a_checkpoint_needs_a_logged_step_at_or_before_it_and_an_existing_path(store_dir, tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"x")
    run = runstore.init(id="c", dir=store_dir)
    with pytest.raises(runstore.BeyondHistory):
        run.checkpoint(path)
    run.log({"a": 1.0})
    with pytest.raises(runstore.BeyondHistory):
        run.checkpoint(path, step=5)
    with pytest.raises(runstore.InvalidStep):
        run.checkpoint(path, step=-1)
    with pytest.raises(runstore.Error):
        run.checkpoint(tmp_path / "not-saved.pt")
    run.finish()
    assert runstore.Api(store_dir).run("c").checkpoints == []
    assert runstore.init(id="c", resume="must", dir=store_dir).resumed_checkpoint is None


def killed_after_checkpoints(store_dir: str, tmp_path: Path) -> None:
    """A child logs steps 0..249 with a checkpoint after steps 99 and 199, flushes, and is
    SIGKILLed."""
    child = python_child(
        f"""
        import os, signal, runstore
        run = runstore.init(id="t", dir={store_dir!r})
        for step in range(250):
            run.log({{"loss": float(step)}})
            if step % 100 == 99:
                path = os.path.join({str(tmp_path)!r}, f"ckpt-{{step}}.pt")
                with open(path, "wb") as file:
                    file.write(b"state")
                run.checkpoint(path)
        run.flush()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert [step for step, _ in history(store_dir, "t")] == list(range(250))


def test_resume_from_checkpoint_after_a_sigkill_rewinds_to_the_last_recorded_checkpoint(store_dir, tmp_path):
    killed_after_checkpoints(store_dir, tmp_path)
    run = runstore.init(id="t", resume_from="checkpoint", dir=store_dir)
    assert run.resumed and run.step == 200
    resumed = run.resumed_checkpoint
    assert (resumed["step"], resumed["path"], resumed["attempt"]) == (199, str(tmp_path / "ckpt-199.pt"), 1)
    run.log({"loss": -1.0})
    run.finish()
    assert [step for step, _ in history(store_dir, "t")] == list(range(201))
    [branch] = runstore.Api(store_dir).run("t").branches
    assert (branch["rewound_to"], branch["first_step"], branch["last_step"]) == (199, 200, 249)


def test_resume_from_checkpoint_skips_a_deleted_checkpoint_file_with_a_warning(store_dir, tmp_path):
    killed_after_checkpoints(store_dir, tmp_path)
    os.remove(tmp_path / "ckpt-199.pt")
    with pytest.warns(UserWarning, match="ckpt-199.pt .*no longer exists"):
        run = runstore.init(id="t", resume="must", resume_from="checkpoint", dir=store_dir)
    assert run.resumed_checkpoint["step"] == 99 and run.step == 100
    run.finish()
    assert [step for step, _ in history(store_dir, "t")] == list(range(100))
    assert [(c["step"], c["exists"]) for c in runstore.Api(store_dir).run("t").checkpoints] == [(99, True), (199, False)]


def test_the_resume_from_environment_variable_says_checkpoint(store_dir, tmp_path, monkeypatch):
    killed_after_checkpoints(store_dir, tmp_path)
    monkeypatch.setenv("RUNSTORE_RESUME_FROM", "checkpoint")
    run = runstore.init(id="t", resume="must", dir=store_dir)
    assert run.resumed_checkpoint["step"] == 199 and run.step == 200
    run.finish()


def test_a_run_that_was_not_resumed_from_a_checkpoint_has_none(store_dir, tmp_path):
    killed_after_checkpoints(store_dir, tmp_path)
    run = runstore.init(id="t", resume="must", dir=store_dir)
    assert run.resumed and run.resumed_checkpoint is None and run.step == 250
    run.finish()
