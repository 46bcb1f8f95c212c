"""Checks `runstore sync --mlflow` and `runstore export --format tensorboard` end to end.

Usage: check.py RUNSTORE_BINARY QUICKSTART_BINARY CLI_TEST_BINARY (run by tests/sync/run.sh; the
last records system samples, with its ignored test `system_metrics::sync_fixture`).
Prints one line per check and a closing `sync: N passed, N failed`. With SYNC_ONLY set, only the
checks whose names contain it run.
"""

import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

RUNSTORE, QUICKSTART, CLI_TESTS = sys.argv[1], sys.argv[2], sys.argv[3]
WORK = tempfile.mkdtemp(prefix="runstore-sync-")
STORE = os.path.join(WORK, "store")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("RUNSTORE_")}
results = {"passed": 0, "failed": 0}


def runstore(*args, check=True):
    done = subprocess.run([RUNSTORE, "--dir", STORE, *args], env=ENV, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"runstore {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def history(run_id, branches=False):
    """(branch, step) -> {metric: value} from runstore's jsonl."""
    args = ["history", run_id, "--format", "jsonl"] + (["--all-branches"] if branches else [])
    rows = {}
    for line in runstore(*args).stdout.splitlines():
        row = json.loads(line)
        branch = row.pop("branch", "live")
        step = row.pop("step")
        rows[(branch, step)] = {k: float(v) if isinstance(v, str) else v for k, v in row.items()}
    return rows


def system_samples(run_id):
    """(metric, index) -> (timestamp in ms, value) from `runstore history --system`."""
    samples, counts = {}, {}
    for line in runstore("history", run_id, "--system", "--format", "jsonl").stdout.splitlines():
        sample = json.loads(line)
        metric = sample["metric"]
        index = counts.get(metric, 0)
        counts[metric] = index + 1
        value = float(sample["value"]) if isinstance(sample["value"], str) else sample["value"]
        samples[(metric, index)] = (round(sample["_timestamp"] * 1000), value)
    return samples


def record_system_samples(count):
    """Adds `count` samples of nine system metrics to run `sys` (and a row)."""
    subprocess.run([CLI_TESTS, "system_metrics::sync_fixture", "--exact", "--ignored", "--quiet"],
                   env=dict(ENV, RUNSTORE_FIXTURE_STORE=STORE, RUNSTORE_FIXTURE_SAMPLES=str(count)),
                   capture_output=True, check=True)


def assert_system_metrics_equal(client, mlflow_run_id, samples):
    """Every sample once in MLflow, as metric system/..., step its index, its timestamp."""
    got = {}
    for metric in {metric for metric, _ in samples}:
        for m in client.get_metric_history(mlflow_run_id, metric):
            key = (metric, m.step)
            assert key not in got, f"sample {m.step} of {metric} arrived twice"
            got[key] = (m.timestamp, m.value)
    assert set(got) == set(samples), f"{len(got)} samples in MLflow, {len(samples)} in runstore; " \
        f"missing {sorted(set(samples) - set(got))[:5]}, extra {sorted(set(got) - set(samples))[:5]}"
    for key, (timestamp, value) in samples.items():
        assert got[key][0] == timestamp, f"{key}: MLflow timestamp {got[key][0]}, runstore {timestamp}"
        assert same(got[key][1], value), f"{key}: MLflow {got[key][1]!r}, runstore {value!r}"


def same(mlflow_value, runstore_value):
    """MLflow's SQL store keeps infinities as +-f64::MAX (its own clamp); all else is exact."""
    if math.isinf(runstore_value):
        return mlflow_value == math.copysign(sys.float_info.max, runstore_value) or mlflow_value == runstore_value
    return (math.isnan(mlflow_value) and math.isnan(runstore_value)) or mlflow_value == runstore_value


def same_f32(tensorboard_value, as_f32):
    return (math.isnan(tensorboard_value) and math.isnan(as_f32)) or tensorboard_value == as_f32


def check(name):
    def wrap(function):
        if os.environ.get("SYNC_ONLY", "") not in name:
            return function
        try:
            function()
            results["passed"] += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - every failure is reported the same way
            results["failed"] += 1
            print(f"FAIL {name}\n{traceback.format_exc()}")
        return function
    return wrap


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server():
    port = free_port()
    db = os.path.join(WORK, "mlflow.db")
    log = open(os.path.join(WORK, "mlflow.log"), "w")
    venv_bin = os.path.dirname(sys.executable)
    server = subprocess.Popen(
        [os.path.join(venv_bin, "mlflow"), "server", "--backend-store-uri", f"sqlite:///{db}",
         "--default-artifact-root", os.path.join(WORK, "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return server, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the MLflow server did not start within 180 s; see " + log.name)


def start_flaky_proxy(url, fail_batch, lose=False):
    """An HTTP proxy to the MLflow server at `url` that forwards every request, but answers 500
    to the `fail_batch`-th log-batch that carries metrics: after MLflow has stored it, or, with
    `lose`, without passing it on. (Sync keeps its state per server URL: every sync of a test
    goes through the same proxy.)"""
    import http.server
    import threading

    batches = {"seen": 0}

    class Proxy(http.server.BaseHTTPRequestHandler):
        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if self.command == "POST" else None
            failing = False
            if body and self.path.endswith("/runs/log-batch") and json.loads(body).get("metrics"):
                batches["seen"] += 1
                failing = batches["seen"] == fail_batch
            if failing and lose:
                status, payload = 500, b'{"error_code": "INTERNAL_ERROR", "message": "lost"}'
            else:
                request = urllib.request.Request(url + self.path, data=body, method=self.command,
                                                 headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as error:
                    status, payload = error.code, error.read()
                if failing:
                    status, payload = 500, b'{"error_code": "INTERNAL_ERROR", "message": "stored, then failed"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = forward

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def sync(url, *ids, check=True):
    return runstore("sync", "--mlflow", url, *ids, check=check)


def mlflow_runs(client, run_id):
    from mlflow.entities import ViewType
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(experiments, f"tags.`runstore.run_id` = '{run_id}'", max_results=100)
    live = [r for r in runs if "runstore.branch" not in r.data.tags]
    branches = {r.data.tags["runstore.branch"]: r for r in runs if "runstore.branch" in r.data.tags}
    return live, branches


def metric_points(client, mlflow_run_id, metrics):
    points = {}
    for metric in metrics:
        for m in client.get_metric_history(mlflow_run_id, metric):
            key = (m.step, metric)
            assert key not in points, f"step {m.step} of {metric} arrived twice"
            points[key] = m.value
    return points


def assert_points_equal(points, rows, branch="live", upto=None):
    expected = {(step, k): v for (b, step), row in rows.items() if b == branch and (upto is None or step <= upto)
                for k, v in row.items()}
    assert set(points) == set(expected), f"{len(points)} points in MLflow, {len(expected)} in runstore; " \
        f"missing {sorted(set(expected) - set(points))[:5]}, extra {sorted(set(points) - set(expected))[:5]}"
    for key, value in expected.items():
        assert same(points[key], value), f"{key}: MLflow {points[key]!r}, runstore {value!r}"


def main():
    import mlflow
    from mlflow.tracking import MlflowClient

    # A run with two attempts (the first killed), NaN and infinities, a rewind, a fork.
    env = dict(ENV, RUNSTORE_DIR=STORE)
    out = subprocess.run([QUICKSTART], env=env, capture_output=True, text=True, check=True).stdout
    base = out.split("training run ")[1].split()[0]
    runstore("log", base, "eval/acc=nan", "eval/loss=inf")
    runstore("log", base, "eval/acc=0.75", "eval/loss=-inf")
    runstore("rewind", base, "--to", "450")
    runstore("log", base, "--step", "460", "loss=0.125", "acc=0.5")
    runstore("fork", base, "--at", "100", "--id", "forked", "--config", '{"lr": 0.5, "opt": {"beta": 0.9}}')
    runstore("log", "forked", "loss=1.5")

    server, url = start_server()
    client = MlflowClient(tracking_uri=url)
    try:
        first = sync(url).stdout

        @check("sync pushes every point with its step, bit for bit, NaN and infinities included")
        def _():
            runstore("log", base, "eval/acc=nan", "eval/loss=-inf")
            sync(url, base)
            rows = history(base, branches=True)
            assert any(math.isnan(v) for row in rows.values() for v in row.values())
            live, branches = mlflow_runs(client, base)
            assert len(live) == 1, f"{len(live)} MLflow runs for the live history"
            metrics = {k for row in rows.values() for k in row}
            assert_points_equal(metric_points(client, live[0].info.run_id, metrics), rows)

        @check("params are the flattened config, tags carry the runstore facts, status maps the state")
        def _():
            live, _ = mlflow_runs(client, base)
            run = live[0]
            assert run.data.params == {"lr": "0.0003", "batch_size": "64", "steps": "500"}, run.data.params
            tags = run.data.tags
            assert tags["runstore.state"] == "finished" and tags["runstore.project"] == "quickstart", tags
            assert tags["runstore.attempts"] == str(len(json.loads(runstore("show", base, "--json").stdout)["attempts"]))
            assert run.info.status == "FINISHED", run.info.status
            experiment = client.get_experiment(run.info.experiment_id)
            assert experiment.name == "quickstart", experiment.name

        @check("an archived branch is an MLflow run of its own, tagged with its origin")
        def _():
            rows = history(base, branches=True)
            _, branches = mlflow_runs(client, base)
            assert set(branches) == {"0"}, set(branches)
            run = branches["0"]
            assert run.data.tags["runstore.branch_of"] == base and run.data.tags["runstore.rewound_to"] == "450"
            metrics = {k for row in rows.values() for k in row}
            assert_points_equal(metric_points(client, run.info.run_id, metrics), rows, branch=0)

        @check("a fork's history includes its parent's rows up to the fork step")
        def _():
            rows = history("forked")
            live, _ = mlflow_runs(client, "forked")
            assert live[0].data.tags["runstore.forked_from"] == f"{base}@100"
            assert live[0].data.params["lr"] == "0.5" and live[0].data.params["opt.beta"] == "0.9"
            assert_points_equal(metric_points(client, live[0].info.run_id, {"loss", "acc", "lr"}), rows)

        @check("a second sync sends nothing and creates nothing")
        def _():
            assert "3 MLflow runs created" in first, first
            again = sync(url).stdout
            assert "0 MLflow runs created, 0 rows (0 points) sent" in again, again
            live, _ = mlflow_runs(client, base)
            assert len(client.get_metric_history(live[0].info.run_id, "loss")) == \
                sum(1 for (b, _), r in history(base).items() if "loss" in r)

        @check("rows logged after a sync arrive with the next sync, once")
        def _():
            runstore("log", base, "loss=0.0625")
            said = sync(url, base).stdout
            assert "1 row (1 point) sent" in said, said
            live, _ = mlflow_runs(client, base)
            assert_points_equal(metric_points(client, live[0].info.run_id, {"loss", "acc", "lr", "eval/acc", "eval/loss"}),
                                history(base))

        @check("a batch in flight when sync died is completed without duplicates")
        def _():
            live, _ = mlflow_runs(client, base)
            state_dir = os.path.join(STORE, "sync")
            [server_dir] = os.listdir(state_dir)
            path = os.path.join(state_dir, server_dir, base + ".json")
            state = json.load(open(path))
            last = state["live"]["pushed_through"]
            state["live"]["pushed_through"] = last - 40
            state["live"]["inflight"] = [last - 39, last]
            json.dump(state, open(path, "w"))
            sync(url, base)
            assert_points_equal(metric_points(client, live[0].info.run_id, {"loss", "acc", "lr", "eval/acc", "eval/loss"}),
                                history(base))

        @check("a rewind below what was synced hands that MLflow run to the branch; the live history starts anew")
        def _():
            metrics = {"loss", "acc", "lr", "eval/acc", "eval/loss"}
            [old], _ = mlflow_runs(client, base)
            runstore("rewind", base, "--to", "300")
            runstore("log", base, "loss=9.5")
            sync(url, base)
            live, branches = mlflow_runs(client, base)
            assert len(live) == 1 and live[0].info.run_id != old.info.run_id
            assert branches["1"].info.run_id == old.info.run_id, "the old MLflow run now stands for branch 1"
            rows = history(base, branches=True)
            assert_points_equal(metric_points(client, live[0].info.run_id, metrics), rows)
            # The old MLflow run holds the history as it was before the rewind: rows up to 300,
            # then the archived ones.
            before = {k: v for k, v in rows.items() if (k[0] == "live" and k[1] <= 300) or k[0] == 1}
            before = {("live", step): row for (_, step), row in before.items()}
            assert_points_equal(metric_points(client, old.info.run_id, metrics), before)

        def failed_sync_then_rewind(run_id, lose, logged_after, between):
            """Trains `run_id`, syncs it through a proxy that fails its second batch (storing it,
            or with `lose` not), calls `between(old MLflow run, rows)`, rewinds it to step 400,
            logs `logged_after` rows and syncs again. Returns the old run, its rows and what the
            last sync said."""
            subprocess.run([QUICKSTART, "train"], env=dict(env, RUNSTORE_RUN_ID=run_id, QUICKSTART_STEP_MS="0"),
                           stdout=subprocess.DEVNULL, check=True)
            old_rows = history(run_id)
            proxy, proxy_url = start_flaky_proxy(url, fail_batch=2, lose=lose)
            try:
                failed = sync(proxy_url, run_id, check=False)
                assert failed.returncode != 0, failed
                [old], _ = mlflow_runs(client, run_id)
                between(old, old_rows)
                runstore("rewind", run_id, "--to", "400")
                for _step in range(logged_after):
                    runstore("log", run_id, "loss=-1")
                said = sync(proxy_url, run_id).stdout
            finally:
                proxy.shutdown()
            return old, old_rows, said

        @check("a batch stored but answered 500, then a rewind below it: the next sync sends the new rows")
        def _():
            metrics = {"loss", "acc", "lr"}

            def stored_whole(old, old_rows):
                # MLflow stored the failed batch: it holds the whole history as it was.
                assert_points_equal(metric_points(client, old.info.run_id, metrics), old_rows)

            old, old_rows, said = failed_sync_then_rewind("flaky", False, 50, stored_whole)
            rows = history("flaky", branches=True)
            live, branches = mlflow_runs(client, "flaky")
            assert len(live) == 1 and live[0].info.run_id != old.info.run_id, \
                (said, [(r.info.run_id, r.data.tags) for r in live], old.info.run_id, sorted(branches))
            assert_points_equal(metric_points(client, live[0].info.run_id, metrics), rows)
            assert metric_points(client, live[0].info.run_id, {"loss"})[(420, "loss")] == -1.0
            assert branches["0"].info.run_id == old.info.run_id, "the old MLflow run stands for the branch"
            assert_points_equal(metric_points(client, old.info.run_id, metrics), old_rows)

        @check("a batch lost on its way, then a rewind below it: the branch's MLflow run still gets the history as it was")
        def _():
            metrics = {"loss", "acc", "lr"}

            def lost_below_the_rewind(old, old_rows):
                got = metric_points(client, old.info.run_id, metrics)
                first_lost = min(step for (_, step) in old_rows if (step, "loss") not in got)
                assert 0 < first_lost < 400, f"the lost batch starts below the rewind: {first_lost}"

            old, old_rows, _ = failed_sync_then_rewind("lossy", True, 20, lost_below_the_rewind)
            rows = history("lossy", branches=True)
            live, branches = mlflow_runs(client, "lossy")
            assert_points_equal(metric_points(client, live[0].info.run_id, metrics), rows)
            assert branches["0"].info.run_id == old.info.run_id, "the old MLflow run stands for the branch"
            # Every step up to the rewind (the lost batch's included), then the archived rows.
            assert_points_equal(metric_points(client, old.info.run_id, metrics), old_rows)

        @check("a live run syncs repeatedly while it trains and ends complete")
        def _():
            trainer = subprocess.Popen([QUICKSTART, "train"], env=dict(env, RUNSTORE_RUN_ID="live", QUICKSTART_STEP_MS="8"),
                                       stdout=subprocess.DEVNULL)
            syncs = 0
            while trainer.poll() is None:
                time.sleep(0.3)
                if os.path.exists(os.path.join(STORE, "runs", "live", "run.redb")):
                    sync(url, "live")
                    syncs += 1
            assert trainer.wait() == 0
            sync(url, "live")
            assert syncs >= 2, f"only {syncs} syncs while training"
            live, _ = mlflow_runs(client, "live")
            assert live[0].info.status == "FINISHED"
            assert_points_equal(metric_points(client, live[0].info.run_id, {"loss", "acc", "lr"}), history("live"))

        @check("system samples go as MLflow system metrics: key system/..., step = index, their time")
        def _():
            record_system_samples(1500)
            said = sync(url, "sys").stdout
            assert "and 13500 system samples sent" in said, said
            live, _ = mlflow_runs(client, "sys")
            samples = system_samples("sys")
            assert len(samples) == 9 * 1500 and ("system/gpu0/memory_used_mib", 1499) in samples
            assert_system_metrics_equal(client, live[0].info.run_id, samples)
            keys = set(client.get_run(live[0].info.run_id).data.metrics)
            assert "system/cpu_percent" in keys and "loss" in keys, keys

        @check("system samples recorded after a sync arrive with the next, once; a third sends none")
        def _():
            record_system_samples(20)
            said = sync(url, "sys").stdout
            assert "and 180 system samples sent" in said, said
            said = sync(url, "sys").stdout
            assert "0 rows (0 points) sent" in said and "system" not in said, said
            live, _ = mlflow_runs(client, "sys")
            assert_system_metrics_equal(client, live[0].info.run_id, system_samples("sys"))

        @check("system samples in flight when sync died are completed without duplicates")
        def _():
            # The state of run sys on the server (other checks sync other runs through a proxy).
            state_dir = os.path.join(STORE, "sync")
            [path] = [p for d in os.listdir(state_dir) if os.path.exists(p := os.path.join(state_dir, d, "sys.json"))]
            state = json.load(open(path))
            sent = state["live"]["system_sent"]
            assert sent["system/cpu_percent"] == 1520, sent
            # The last batch: every metric's last 100 samples in flight, half of them not arrived.
            state["live"]["system_sent"] = {metric: count - 100 for metric, count in sent.items()}
            state["live"]["system_inflight"] = {metric: [count - 100, count + 49] for metric, count in sent.items()}
            json.dump(state, open(path, "w"))
            record_system_samples(50)
            said = sync(url, "sys").stdout
            assert "and 450 system samples sent" in said, said
            live, _ = mlflow_runs(client, "sys")
            assert_system_metrics_equal(client, live[0].info.run_id, system_samples("sys"))
            state = json.load(open(path))
            assert state["live"]["system_sent"]["system/cpu_percent"] == 1570 and "system_inflight" not in state["live"]

        @check("an unreachable server is a one-line error with exit code 1")
        def _():
            done = sync(f"http://127.0.0.1:{free_port()}", base, check=False)
            assert done.returncode == 1, done
            assert "cannot be reached" in done.stderr and done.stderr.count("\n") == 1, done.stderr

        @check("export --format tensorboard is read back by TensorBoard, every point (as f32)")
        def _():
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            target = os.path.join(WORK, "tb")
            runstore("export", base, "--format", "tensorboard", "-o", target)
            rows = history(base, branches=True)
            for branch, directory in [("live", target), (0, os.path.join(target, "branch-0"))]:
                accumulator = EventAccumulator(directory, size_guidance={"scalars": 0})
                accumulator.Reload()
                expected = {(step, k): v for (b, step), row in rows.items() if b == branch for k, v in row.items()}
                got = {}
                for tag in accumulator.Tags()["scalars"]:
                    for event in accumulator.Scalars(tag):
                        got[(event.step, tag)] = event.value
                assert set(got) == set(expected), f"{branch}: {len(got)} points read, {len(expected)} expected"
                for key, value in expected.items():
                    as_f32 = struct.unpack("<f", struct.pack("<f", value))[0]
                    assert same_f32(got[key], as_f32), f"{branch} {key}: {got[key]!r} vs {as_f32!r}"
        @check("export --format tensorboard writes every system sample: its tag, its index as step, its time")
        def _():
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            target = os.path.join(WORK, "tb-sys")
            runstore("export", "sys", "--format", "tensorboard", "-o", target)
            accumulator = EventAccumulator(target, size_guidance={"scalars": 0})
            accumulator.Reload()
            expected = system_samples("sys")
            got = {}
            for tag in accumulator.Tags()["scalars"]:
                if tag.startswith("system/"):
                    for event in accumulator.Scalars(tag):
                        got[(tag, event.step)] = (round(event.wall_time * 1000), event.value)
            assert set(got) == set(expected), f"{len(got)} samples read, {len(expected)} expected"
            for key, (timestamp, value) in expected.items():
                as_f32 = struct.unpack("<f", struct.pack("<f", value))[0]
                assert got[key][0] == timestamp and same_f32(got[key][1], as_f32), f"{key}: {got[key]} vs {(timestamp, as_f32)}"
            # Selected by name like step metrics.
            only = os.path.join(WORK, "tb-sys-cpu")
            runstore("export", "sys", "--format", "tensorboard", "-o", only, "-m", "system/cpu_percent")
            accumulator = EventAccumulator(only, size_guidance={"scalars": 0})
            accumulator.Reload()
            assert accumulator.Tags()["scalars"] == ["system/cpu_percent"], accumulator.Tags()["scalars"]

    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(f"sync: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


main()
