#!/usr/bin/env python3
"""Throughput of widthlab worker processes on one PostgreSQL database.

The same jobs (norms jobs of 128 networks each: 16 units of 8, plus the finishing unit that
builds the report) are run by an API-only server and 1, then 2, single-thread
`widthlab worker`s, each time on a fresh database; the script prints the wall time from the
first job's creation to the last one's finish (the server's timestamps; the script polls
only every 0.5 s, so that it takes no CPU from the workers), the units completed per minute, and the speed-up. With
`--jobs 1` the speed-up is that of one job, whose finishing unit runs alone at the end; with
several jobs queued at once (a sweep, a table, a lab's queue) a finishing unit overlaps the
other jobs' units. Needs the release binary (`cargo build --release`), `psql` and a
PostgreSQL server (default: the one at 127.0.0.1:5432, trust auth). Run on an otherwise idle
machine.

    python3 bench/scaleout.py [--workers 1,2] [--trials 128] [--jobs 1] [--repeat 2]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("WIDTHLAB_BIN", os.path.join(ROOT, "target", "release", "widthlab"))
SERVER = os.environ.get("WIDTHLAB_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")


UNIT_NETWORKS = 8  # networks per unit of a norms job (jobs::kinds::norms::TRIALS_PER_UNIT)


def spec(trials, seed):
    return {
        "network": {"input_dim": 256, "depth": 10, "width": 256, "init": {"scheme": "he", "fan": "out"}},
        "samples": 256, "trials": trials, "seed": seed, "method": "dense", "precision": "f64",
    }


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("WIDTHLAB_")}
    e["RUST_LOG"] = "warn"
    return e


def instant(stamp):
    """Seconds since the epoch of an RFC 3339 timestamp with a Z suffix (microseconds kept)."""
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def one_run(workers, trials, jobs):
    db = "widthlab_bench_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", SERVER + "/test", "-qc", f"CREATE DATABASE {db}"], check=True)
    url = f"{SERVER}/{db}"
    procs = []
    try:
        api = subprocess.Popen([BIN, "serve", "--bind", "127.0.0.1:0", "--database-url", url, "--workers", "0"],
                               stdout=subprocess.PIPE, text=True, env=env())
        procs.append(api)
        address = api.stdout.readline().strip().removeprefix("widthlab listening on ")
        for _ in range(workers):
            w = subprocess.Popen([BIN, "worker", "--database-url", url, "--threads", "1"],
                                 stdout=subprocess.DEVNULL, env=env())
            procs.append(w)
        time.sleep(1.0)  # workers connected and migrated
        ids = []
        for j in range(jobs):
            body = json.dumps(spec(trials, 1 + j)).encode()
            req = urllib.request.Request(address + "/v1/jobs", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                ids.append(json.load(r)["id"])
        # Polled slowly (the poller must not take CPU from the workers); the time is the
        # server's: from the first job's creation to the last one's finish.
        done = {}
        while len(done) < len(ids):
            time.sleep(0.5)
            for i in ids:
                if i in done:
                    continue
                job = get(f"{address}/v1/jobs/{i}")
                if job["status"] in ("failed", "cancelled"):
                    sys.exit(f"job {i} ended {job['status']}: {job.get('error')}")
                if job["status"] == "succeeded":
                    done[i] = job
        elapsed = (max(instant(j["finished_at"]) for j in done.values())
                   - min(instant(j["created_at"]) for j in done.values()))
        layers = [get(f"{address}/v1/jobs/{i}/layers")["layers"] for i in ids]
        return elapsed, layers
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        subprocess.run(["psql", SERVER + "/test", "-qc", f"DROP DATABASE IF EXISTS {db}"], check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--trials", type=int, default=128)
    ap.add_argument("--jobs", type=int, default=1, help="jobs submitted at once")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    units = args.jobs * (-(-args.trials // UNIT_NETWORKS) + 1)
    best = {}
    reference = None
    for n in counts:
        for _ in range(args.repeat):
            t, layers = one_run(n, args.trials, args.jobs)
            if reference is None:
                reference = layers
            elif layers != reference:
                sys.exit(f"{n} workers gave different numbers")
            best[n] = min(best.get(n, t), t)
            print(f"{n} worker(s): {t:.2f} s, {units / t * 60:.0f} units/min", flush=True)
    base = best[counts[0]]
    for n in counts:
        print(f"best of {args.repeat}: {n} worker(s) {best[n]:.2f} s, {units / best[n] * 60:.0f} units/min "
              f"({args.jobs} job(s) of {args.trials} networks, {units} units), speed-up {base / best[n]:.2f}x over {counts[0]}")


if __name__ == "__main__":
    main()
