"""A Python process killed with SIGKILL leaves its run crashed and resumable, with every
flushed row there."""

from __future__ import annotations

import signal
import subprocess

import pytest
from conftest import history, python_child

import runstore


@pytest.mark.parametrize("durability", ["buffered", "every_log"])
def test_a_process_killed_mid_logging_leaves_the_run_crashed_with_every_flushed_row(store_dir, durability):
    # The child logs without end, flushing every 100 rows and then saying how far it is; it is
    # killed while logging. Buffered rows after the last flush may be lost, flushed ones never.
    child = python_child(
        f"""
        import runstore
        run = runstore.init(id="k", resume="allow", dir={store_dir!r}, durability={durability!r},
                            config={{"lr": 0.1}})
        run.config.update({{"batch": 32}})  # stored at once, before any row
        step = 0
        while True:
            run.log({{"loss": 1.0 / (step + 1), "step_copy": step, "nested": {{"x": -step}}}})
            step += 1
            if step % 100 == 0:
                run.flush()
                print(step - 1, flush=True)
        """,
        stdout=subprocess.PIPE,
        text=True,
    )
    flushed = -1
    try:
        while flushed < 2_000:
            line = child.stdout.readline()
            assert line, "the child stopped before it was killed"
            flushed = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    stored = runstore.Api(store_dir).run("k")
    assert stored.state == "crashed" and stored.config == {"lr": 0.1, "batch": 32}
    rows = history(store_dir, "k")
    steps = [step for step, _ in rows]
    assert steps == list(range(len(rows))) and len(rows) > flushed
    assert all(row == {"loss": 1.0 / (step + 1), "step_copy": float(step), "nested/x": float(-step)} for step, row in rows)

    # Resumable: the next attempt continues at the step after the last stored row.
    run = runstore.init(id="k", resume="allow", dir=store_dir)
    assert run.resumed and run.step == len(rows)
    run.log({"loss": 0.0})
    run.finish()
    stored = runstore.Api(store_dir).run("k")
    assert stored.state == "finished" and stored.config == {"lr": 0.1, "batch": 32}
    assert [attempt["outcome"] for attempt in stored.attempts] == ["crashed", "finished"]


def test_a_process_killed_after_bad_input_leaves_the_run_crashed_and_resumable(store_dir):
    # Every refused call of the bad-input suite, then SIGKILL: nothing of the refused calls is
    # stored, the rows before are, and the run resumes.
    child = python_child(
        f"""
        import runstore
        run = runstore.init(id="b", dir={store_dir!r})
        run.log({{"a": 1.0}})
        for bad in ({{"a": "text"}}, {{1: 2.0}}, {{"": 1.0}}):
            try:
                run.log(bad)
            except runstore.Error:
                pass
        try:
            run.log({{"a": 2.0}}, step=-1)
        except runstore.Error:
            pass
        run.flush()
        print("ready", flush=True)
        import time
        time.sleep(60)
        """,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert runstore.Api(store_dir).run("b").state == "crashed"
    assert history(store_dir, "b") == [(0, {"a": 1.0})]
    run = runstore.init(id="b", resume="must", dir=store_dir)
    assert run.step == 1
    run.finish()


@pytest.mark.parametrize("durability", ["buffered", "every_log"])
def test_a_forked_child_leaves_its_parents_run_alone_and_exits_promptly(store_dir, durability):
    # A script forks (as some data loaders do without exec); the child exits through the
    # interpreter's exit, whose handler finishes the live run: it must neither hang on the
    # parent's threads nor write the parent's run.
    child = python_child(
        f"""
        import os, sys
        import runstore
        run = runstore.init(id="r", dir={store_dir!r}, durability={durability!r})
        for step in range(100):
            run.log({{"loss": float(step)}})
        pid = os.fork()
        if pid == 0:
            try:
                run.log({{"loss": -1.0}})
                run.flush()
                os._exit(3)
            except runstore.ForkedProcess as error:
                if (error.owner, error.pid) != (os.getppid(), os.getpid()):
                    os._exit(4)
            sys.exit(0)  # the exit handler finishes the run: refused, quietly
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(10 + os.waitstatus_to_exitcode(status))
        for step in range(100, 200):
            run.log({{"loss": float(step)}})
        runstore.finish()
        """
    )
    assert child.wait(timeout=60) == 0
    stored = runstore.Api(store_dir).run("r")
    assert stored.state == "finished"
    assert history(store_dir, "r") == [(step, {"loss": float(step)}) for step in range(200)]
