"""init: W&B's resume policies, the environment, rewind and fork, reinit, the lock."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import history, python_child

import runstore


def test_allow_creates_then_resumes_at_the_next_step(store_dir):
    run = runstore.init(id="r", resume="allow", dir=store_dir)
    assert not run.resumed and run.step == 0
    run.log({"a": 1.0})
    run.log({"a": 2.0})
    run.finish(1)
    run = runstore.init(id="r", resume="allow", dir=store_dir)
    assert run.resumed and run.step == 2 and run.starting_step == 2 and run.attempt == 2
    run.log({"a": 3.0})
    run.finish()
    assert [step for step, _ in history(store_dir, "r")] == [0, 1, 2]
    assert [attempt["outcome"] for attempt in runstore.Api(store_dir).run("r").attempts] == ["failed", "finished"]


def test_a_resumed_run_shows_its_stored_record_merged_with_this_init(store_dir):
    runstore.init(id="r", project="p", name="first", tags=["a"], dir=store_dir, config={"lr": 0.1, "bs": 8}).finish()
    run = runstore.init(id="r", resume="must", dir=store_dir, config={"lr": 0.2}, tags=["b"])
    assert (run.project, run.name, run.tags) == ("p", "first", ("a", "b"))
    assert run.config.as_dict() == {"lr": 0.2, "bs": 8}
    run.finish()


def test_must_needs_an_existing_run_and_never_a_new_one(store_dir):
    with pytest.raises(runstore.RunNotFound) as raised:
        runstore.init(id="r", resume="must", dir=store_dir)
    assert raised.value.id == "r" and isinstance(raised.value, LookupError)
    runstore.init(id="r", resume="never", dir=store_dir).finish()
    with pytest.raises(runstore.RunExists):
        runstore.init(id="r", resume="never", dir=store_dir)
    with pytest.raises(runstore.RunExists):
        runstore.init(id="r", dir=store_dir)  # an id without a policy never touches a run
    with pytest.raises(runstore.RunIdRequired):
        runstore.init(resume="must", dir=store_dir)
    runstore.init(id="r", resume="must", dir=store_dir).finish()


def test_auto_and_true_resume_the_run_this_directory_left_unfinished(store_dir):
    run = runstore.init(resume=True, dir=store_dir)
    run.log({"a": 1.0})
    run.finish(1)
    again = runstore.init(resume="auto", dir=store_dir)
    assert again.id == run.id and again.resumed and again.step == 1
    again.finish()
    fresh = runstore.init(resume="auto", dir=store_dir)
    assert fresh.id != run.id and not fresh.resumed


def test_resume_from_rewinds_and_archives_the_later_rows(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    for step in range(10):
        run.log({"a": float(step)})
    run.finish(1)
    run = runstore.init(resume_from="r?_step=5", dir=store_dir)
    assert run.id == "r" and run.step == 6
    run.log({"a": 60.0})
    run.finish()
    assert [(step, row["a"]) for step, row in history(store_dir, "r")] == [(s, float(s)) for s in range(6)] + [(6, 60.0)]
    [branch] = runstore.Api(store_dir).run("r").branches
    assert (branch["rewound_to"], branch["first_step"], branch["last_step"], branch["rows"]) == (5, 6, 9, 4)
    assert [step for step, _ in history(store_dir, "r", branch=branch["id"])] == [6, 7, 8, 9]


def test_resume_from_a_plain_step_uses_the_id(store_dir):
    run = runstore.init(id="r", dir=store_dir)
    for step in range(4):
        run.log({"a": float(step)})
    run.finish()
    run = runstore.init(id="r", resume_from=1, dir=store_dir)
    assert run.step == 2
    run.finish()
    with pytest.raises(runstore.BeyondHistory) as raised:
        runstore.init(id="r", resume_from=10, dir=store_dir)
    assert (raised.value.requested, raised.value.last) == (10, 1)
    with pytest.raises(runstore.InvalidArgument, match="must agree"):
        runstore.init(id="other", resume_from="r?_step=1", dir=store_dir)


def test_fork_from_starts_a_new_run_sharing_the_history_up_to_the_step(store_dir):
    base = runstore.init(id="base", dir=store_dir, config={"lr": 0.1})
    for step in range(10):
        base.log({"a": float(step)})
    base.finish()
    fork = runstore.init(id="fork", dir=store_dir, fork_from="base?_step=4", config={"lr": 0.01})
    assert fork.step == 5
    fork.log({"a": 50.0})
    fork.finish()
    api = runstore.Api(store_dir)
    assert [step for step, _ in history(store_dir, "fork")] == [0, 1, 2, 3, 4, 5]
    assert api.run("fork").forked_from == ("base", 4)
    assert api.run("fork").config == {"lr": 0.01}
    assert len(history(store_dir, "base")) == 10


def test_the_environment_fills_what_the_code_leaves_unset(store_dir, monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "from-wandb")
    monkeypatch.setenv("WANDB_RESUME", "allow")
    monkeypatch.setenv("WANDB_PROJECT", "wp")
    monkeypatch.setenv("WANDB_TAGS", "a, b")
    monkeypatch.setenv("WANDB_DIR", store_dir)
    run = runstore.init()
    assert (run.id, run.project, run.tags, run.dir) == ("from-wandb", "wp", ("a", "b"), store_dir)
    run.finish()
    monkeypatch.setenv("RUNSTORE_RUN_ID", "from-runstore")
    monkeypatch.setenv("RUNSTORE_PROJECT", "rp")
    run = runstore.init()
    assert run.id == "from-runstore"
    run.finish()
    stored = runstore.Api(store_dir).run("from-runstore")
    assert stored.project == "rp" and runstore.Api(store_dir).run("from-wandb").tags == ["a", "b"]


def test_reinit_finishes_returns_or_keeps_the_previous_run(store_dir):
    first = runstore.init(id="one", dir=store_dir)
    assert runstore.init(id="x", dir=store_dir, reinit="return_previous") is first
    second = runstore.init(id="two", dir=store_dir, reinit=True)
    assert first.finished and runstore.run is second
    third = runstore.init(id="three", dir=store_dir, reinit="create_new")
    assert not second.finished and runstore.run is third
    third.finish()
    assert runstore.run is second
    second.finish()
    api = runstore.Api(store_dir)
    assert {run.id: run.state for run in api.runs()} == {"one": "finished", "two": "finished", "three": "finished"}


def test_a_run_written_by_another_process_is_locked_naming_its_pid_and_host(store_dir):
    child = python_child(
        f"""
        import sys, runstore
        run = runstore.init(id="held", dir={store_dir!r})
        print("ready", flush=True)
        sys.stdin.readline()
        run.finish()
        """,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(runstore.RunLocked) as raised:
            runstore.init(id="held", resume="allow", dir=store_dir)
        assert raised.value.pid == child.pid and raised.value.host and raised.value.id == "held"
    finally:
        child.communicate("\n", timeout=30)
    assert child.returncode == 0
    assert runstore.Api(store_dir).run("held").state == "finished"


def test_a_script_that_exits_without_finish_is_finished_at_exit_and_failed_after_an_exception(store_dir):
    for id, tail, state in (("clean", "", "finished"), ("raised", "raise SystemExit('boom')", "failed")):
        code = f"import runstore\nrun = runstore.init(id={id!r}, dir={store_dir!r})\nrun.log({{'a': 1.0}})\n"
        if tail == "":
            subprocess.run([sys.executable, "-c", code], check=True)
        else:
            subprocess.run([sys.executable, "-c", code + "raise RuntimeError('boom')"], check=False)
        assert runstore.Api(store_dir).run(id).state == state


def test_a_forked_worker_that_outlives_a_finished_run_delays_the_next_init_not_fails_it(store_dir):
    # A data-loader worker forked while the run was open shares the run's lock file; after the
    # run finishes, the worker still holds the lock until it exits. The next init in this
    # process waits for it instead of refusing with its own pid.
    code = f"""
        import os, time, runstore
        run = runstore.init(id="forked", dir={store_dir!r})
        run.log({{"loss": 1.0}})
        worker = os.fork()
        if worker == 0:
            time.sleep(0.5)
            os._exit(0)
        run.finish()
        started = time.monotonic()
        run = runstore.init(id="forked", resume="must", dir={store_dir!r})
        waited = time.monotonic() - started
        run.log({{"loss": 0.5}})
        run.finish()
        os.waitpid(worker, 0)
        print(f"waited {{waited:.2f}}", flush=True)
        """
    out = python_child(code, stdout=subprocess.PIPE, text=True).communicate(timeout=60)[0]
    waited = float(out.split()[-1])
    assert waited > 0.1, out
    assert runstore.Api(store_dir).run("forked").attempts[-1]["outcome"] == "finished"


def test_a_worker_forked_by_a_writer_that_died_is_named_as_what_holds_the_run(store_dir):
    code = f"""
        import os, sys, time, runstore
        run = runstore.init(id="orphaned", dir={store_dir!r})
        run.log({{"loss": 1.0}})
        worker = os.fork()
        if worker == 0:
            sys.stdin.readline()
            os._exit(0)
        print(worker, flush=True)
        os._exit(137)  # the training process dies; its worker lives on
        """
    child = python_child(code, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        child.wait(timeout=30)
        with pytest.raises(runstore.RunLocked) as raised:
            runstore.init(id="orphaned", resume="must", dir=store_dir)
        assert raised.value.pid == child.pid, raised.value
        assert "a process it forked" in str(raised.value), raised.value
    finally:
        child.stdin.write("\n")
        child.stdin.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            run = runstore.init(id="orphaned", resume="must", dir=store_dir)
            break
        except runstore.RunLocked:
            assert time.monotonic() < deadline, "the worker's exit frees the run"
    run.finish()
