"""The Python workloads of BENCHMARKS.md, one JSON line per measurement (as examples/bench).

    python python/bench/bench.py                      # P1 at N = 10^5, P3 at 10^7 steps
    python python/bench/bench.py --p1-n 1000000 --p3-n 1000000 --repeats 3

P1 (W1 from Python): a fresh store, create the run, log N steps of the four standard metrics,
one dict per `log` call, finish; points per second from before `init` to after `finish`
(interpreter start and import excluded). The values are computed beforehand; the dict is
built in the loop, as a training loop builds it.

P3: a 10^7-step run (built first, not timed), then a new reader reads one metric's (steps,
values) into numpy arrays; points per second.

Medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time

import runstore


def standard(n: int):
    """The four standard metrics of steps 0..n as lists (BENCHMARKS.md's formula)."""
    loss = [2.0 / (1.0 + 0.001 * i) + 0.01 * math.sin(i) for i in range(n)]
    acc = [1.0 - value / 3.0 for value in loss]
    lr = [1e-3 * (0.5 + 0.5 * math.cos(i / 997.0)) for i in range(n)]
    grad_norm = [0.5 + 0.25 * math.sin(i / 13.0) for i in range(n)]
    return loss, acc, lr, grad_norm


def build(dir: str, columns) -> float:
    """W1 from Python: seconds from before init to after finish."""
    loss, acc, lr, grad_norm = columns
    started = time.perf_counter()
    run = runstore.init(id="bench", resume="allow", dir=dir)
    log = run.log
    for i in range(len(loss)):
        log({"loss": loss[i], "acc": acc[i], "lr": lr[i], "grad_norm": grad_norm[i]})
    run.finish()
    return time.perf_counter() - started


def p1(n: int, repeats: int) -> dict:
    columns = standard(n)
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as dir:
            times.append(build(dir, columns))
    seconds = statistics.median(times)
    return {"workload": "P1", "n": n, "points": 4 * n, "seconds": round(seconds, 4), "points_per_s": round(4 * n / seconds)}


def p3(n: int, repeats: int) -> dict:
    import numpy as np

    with tempfile.TemporaryDirectory() as dir:
        build(dir, standard(n))
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            steps, values = runstore.Api(dir).run("bench").series("loss")
            times.append(time.perf_counter() - started)
            assert isinstance(values, np.ndarray) and len(steps) == len(values) == n
    seconds = statistics.median(times)
    return {"workload": "P3", "n": n, "points": n, "seconds": round(seconds, 4), "points_per_s": round(n / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=["P1", "P3", "all"], default="all")
    parser.add_argument("--p1-n", type=int, default=100_000)
    parser.add_argument("--p3-n", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.workload in ("P1", "all"):
        print(json.dumps(p1(args.p1_n, args.repeats)), flush=True)
    if args.workload in ("P3", "all"):
        print(json.dumps(p3(args.p3_n, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
