#!/usr/bin/env python3
"""Side-by-side benchmark: widthlab vs NumPy (and PyTorch where it installs), same machine, same
mathematics, alternating runs. Run by hand (not by CI):

    python3 bench/run.py            # all workloads, 5 alternating rounds
    python3 bench/run.py --torch    # also install and time PyTorch (a large download)
    python3 bench/run.py --quick    # 2 rounds, skip the 4000-wide workload

It creates bench/.venv with NumPy (and torch), builds `cargo build --release --example trial_timer`,
then for every workload and precision runs widthlab, NumPy and torch in turn, round after round,
and prints medians, ratios and the GFLOP/s of the matrix products.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(HERE, ".venv")
PY = os.path.join(VENV, "bin", "python")
TIMER = os.path.join(ROOT, "target", "release", "examples", "trial_timer")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def setup(want_torch):
    if not os.path.exists(PY):
        venv.create(VENV, with_pip=True)
    sh([PY, "-m", "pip", "install", "-q", "numpy"])
    has_torch = False
    if want_torch:
        try:
            sh([PY, "-m", "pip", "install", "-q", "torch"])
        except subprocess.CalledProcessError as e:
            print("torch did not install; continuing without it:", e.stderr[-300:], file=sys.stderr)
    try:
        sh([PY, "-c", "import torch"])
        has_torch = True
    except subprocess.CalledProcessError:
        pass
    subprocess.run(["cargo", "build", "--release", "--example", "trial_timer"], cwd=ROOT, check=True)
    return has_torch


def env_for_numpy():
    # This machine sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS builds; they slow a
    # current NumPy, so the benchmark unsets both (never in tests or CI).
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def one(kind, workload, precision, method="dense"):
    """Warm timings from one process: it runs the workload `runs` times and every run after the
    first counts (the first pays for first-touch page faults and library start-up, in every
    library). Sub-second workloads run 4 times per process, the others twice."""
    runs = "2" if workload in ("w3", "fig6") else "4"
    if kind == "widthlab":
        out = sh([TIMER, workload, precision, runs, method])
    else:
        out = sh([PY, os.path.join(HERE, "reference.py"), kind, workload, precision, runs], env=env_for_numpy())
    r = json.loads(out.strip().splitlines()[-1])
    r["seconds"] = r["seconds"][1:]
    return r


def machine():
    cpu = sh(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
    cores = os.cpu_count()
    numpy = sh([PY, "-c", "import numpy; print(numpy.__version__)"]).strip()
    try:
        torch = sh([PY, "-c", "import torch; print(torch.__version__)"]).strip()
    except subprocess.CalledProcessError:
        torch = "not installed"
    return f"{cpu}, {cores} cores; NumPy {numpy}; torch {torch}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", default="w1,w2,w3,fig6,exact",
                    help="comma-separated subset of w1,w2,w3,fig6,exact")
    ap.add_argument("--small-rounds", type=int, default=9,
                    help="rounds for w1 and w2 (sub-second runs need more to settle)")
    args = ap.parse_args()
    has_torch = setup(args.torch)
    rounds = 2 if args.quick else args.rounds
    print("machine:", machine())
    chosen = set(args.workloads.split(","))
    workloads = [("w1", "f32"), ("w1", "f64"), ("w2", "f32"), ("w2", "f64")]
    if not args.quick:
        workloads += [("w3", "f32"), ("w3", "f64"), ("fig6", "f64")]
    workloads = [(w, p) for w, p in workloads if w in chosen]
    libs = ["widthlab", "numpy"] + (["torch"] if has_torch else [])
    if workloads:
        print(f"{'workload':<8} {'prec':<4} " + " ".join(f"{l + ' s':>11}" for l in libs)
              + f" {'numpy/wl':>9}" + (f" {'torch/wl':>9}" if has_torch else "") + f" {'wl GFLOP/s':>11}")
    for workload, precision in workloads:
        times = {l: [] for l in libs}
        flops = 0.0
        for _ in range(rounds if workload in ("w3", "fig6") else max(rounds, args.small_rounds)):
            for lib in libs:
                r = one(lib, workload, precision)
                times[lib] += r["seconds"]
                flops = r.get("flops", flops)
        med = {l: statistics.median(times[l]) for l in libs}
        line = f"{workload:<8} {precision:<4} " + " ".join(f"{med[l]:>11.4f}" for l in libs)
        line += f" {med['numpy'] / med['widthlab']:>9.2f}"
        if has_torch:
            line += f" {med['torch'] / med['widthlab']:>9.2f}"
        line += f" {flops / med['widthlab'] / 1e9:>11.1f}"
        print(line, flush=True)
    if "exact" not in chosen:
        return
    print()
    print(f"exact samplers (widthlab only, f64; {rounds} alternating rounds, median of the warm runs 2-4):")
    cases = [(w, m, p) for w in ["gram_l50", "gram_l10"] for p in ["forward", "both"] for m in ["dense", "exact"]]
    times = {c: [] for c in cases}
    engines = {}
    for _ in range(rounds):
        for case in cases:
            workload, method, passes = case
            r = json.loads(sh([TIMER, workload, "f64", "4", method, passes]).strip())
            times[case] += r["seconds"][1:]
            engines[case] = r["engine"]
    med = {c: statistics.median(t) for c, t in times.items()}
    for c in cases:
        print(f"  {c[0]:<11} {c[1]:<6} {c[2]:<8} engine={engines[c]:<13} median {med[c]:.4f} s")
    r = json.loads(sh([TIMER, "single_1e6", "f64", "2", "exact"]).strip())
    print(f"  single_1e6  exact  both     engine={r['engine']:<13} {r['seconds'][-1]:.4f} s "
          "(10^4 networks of width 10^6, depth 100)")
    for workload in ["gram_l50", "gram_l10"]:
        for passes in ["forward", "both"]:
            ratio = med[(workload, "dense", passes)] / med[(workload, "exact", passes)]
            print(f"  {workload} {passes}: exact_gram is {ratio:.1f}x faster than dense")

if __name__ == "__main__":
    main()
