#!/usr/bin/env python3
"""Throughput of widthlab worker processes on one PostgreSQL database.

The same job (a norms job of 128 networks: 16 units of 8) is run by an API-only server and
1, then 2, single-thread `widthlab worker`s, each time on a fresh database; the script prints
the wall time from submission to success and the speed-up. Needs the release binary
(`cargo build --release`), `psql` and a PostgreSQL server (default: the one at 127.0.0.1:5432,
trust auth). Run on an otherwise idle machine with at least as many cores as workers + 1.

    python3 bench/scaleout.py [--workers 1,2] [--trials 128]
"""

import argparse
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


def spec(trials):
    return {
        "network": {"input_dim": 256, "depth": 10, "width": 256, "init": {"scheme": "he", "fan": "out"}},
        "samples": 256, "trials": trials, "seed": 1, "method": "dense", "precision": "f64",
    }


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("WIDTHLAB_")}
    e["RUST_LOG"] = "warn"
    return e


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)


def one_run(workers, trials):
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
        body = json.dumps(spec(trials)).encode()
        req = urllib.request.Request(address + "/v1/jobs", data=body, headers={"Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            job = json.load(r)
        while True:
            job = get(f"{address}/v1/jobs/{job['id']}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        if job["status"] != "succeeded":
            sys.exit(f"the job ended {job['status']}: {job.get('error')}")
        layers = get(f"{address}/v1/jobs/{job['id']}/layers")["layers"]
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
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    best = {}
    reference = None
    for n in counts:
        for _ in range(args.repeat):
            t, layers = one_run(n, args.trials)
            if reference is None:
                reference = layers
            elif layers != reference:
                sys.exit(f"{n} workers gave different numbers")
            best[n] = min(best.get(n, t), t)
            print(f"{n} worker(s): {t:.2f} s", flush=True)
    base = best[counts[0]]
    for n in counts:
        print(f"best of {args.repeat}: {n} worker(s) {best[n]:.2f} s, speed-up {base / best[n]:.2f}x over {counts[0]}")


if __name__ == "__main__":
    main()
