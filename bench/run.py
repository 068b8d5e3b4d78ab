#!/usr/bin/env python3
"""Side-by-side benchmark: widthlab vs NumPy (and PyTorch where it installs), same machine, same
mathematics, alternating runs. Run by hand (not by CI):

    python3 bench/run.py            # all workloads, 5 alternating rounds
    python3 bench/run.py --torch    # also install and time PyTorch (a large download)
    python3 bench/run.py --quick    # 2 rounds, skip the 4000-wide workloads

It creates bench/.venv with NumPy (and torch), builds the examples `trial_timer` and
`peak_probe`, measures the machine's peak (FMA chains on every core, and NumPy's BLAS at
4000 x 4000), then for every workload and precision runs widthlab (with `method: dense` and with
the default `auto`), NumPy and torch in turn, round after round, and prints medians, ratios, the
GFLOP/s of the matrix products (dense mathematics, whatever engine ran) and their share of the
measured peak. Workloads: one network (w1, w2, w3, fig6) and many, as jobs draw them (w1x16 and
w2x16: 16 networks; sweep4x8: 4 widths x 8 networks).
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
PEAK = os.path.join(ROOT, "target", "release", "examples", "peak_probe")
LONG = ("w3", "fig6", "w1x16", "w2x16", "sweep4x8")


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
    subprocess.run(["cargo", "build", "--release", "--example", "trial_timer", "--example", "peak_probe"],
                   cwd=ROOT, check=True)
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
    runs = "2" if workload in LONG else "4"
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
    ap.add_argument("--workloads", default="w1,w2,w3,fig6,w1x16,w2x16,sweep4x8,gram_l50,gram_l10,exact",
                    help="comma-separated subset of w1,w2,w3,fig6,w1x16,w2x16,sweep4x8,gram_l50,gram_l10,exact")
    ap.add_argument("--methods", default="dense,auto", help="widthlab's methods to time (dense, auto, exact)")
    ap.add_argument("--small-rounds", type=int, default=9,
                    help="rounds for w1 and w2 (sub-second runs need more to settle)")
    args = ap.parse_args()
    has_torch = setup(args.torch)
    rounds = 2 if args.quick else args.rounds
    print("machine:", machine())
    peak = json.loads(sh([PEAK]).strip())
    blas = json.loads(sh([PY, os.path.join(HERE, "reference.py"), "peak"], env=env_for_numpy()).strip())["blas_gflops"]
    print(f"peak ({peak['isa']} FMA chains, {peak['threads']} threads): f64 {peak['f64_gflops']:.1f} GFLOP/s, "
          f"f32 {peak['f32_gflops']:.1f}; NumPy's BLAS at 4000^3: f64 {blas['f64']:.1f} "
          f"({100 * blas['f64'] / peak['f64_gflops']:.0f}% of peak), f32 {blas['f32']:.1f} "
          f"({100 * blas['f32'] / peak['f32_gflops']:.0f}%)")
    chosen = set(args.workloads.split(","))
    methods = args.methods.split(",")
    workloads = [("w1", "f32"), ("w1", "f64"), ("w2", "f32"), ("w2", "f64"),
                 ("w1x16", "f32"), ("w1x16", "f64"), ("w2x16", "f32"), ("w2x16", "f64"),
                 ("sweep4x8", "f32"), ("sweep4x8", "f64"),
                 # Shapes where an exact sampler applies (few inputs, long or wide networks).
                 ("gram_l50", "f64"), ("gram_l10", "f64")]
    if not args.quick:
        workloads += [("w3", "f32"), ("w3", "f64"), ("fig6", "f64")]
    workloads = [(w, p) for w, p in workloads if w in chosen]
    refs = ["numpy"] + (["torch"] if has_torch else [])
    if workloads:
        print("medians in seconds; x/y is y's time over x's (above 1: widthlab faster); GFLOP/s and % of peak are")
        print("the dense mathematics' matrix products over widthlab's time with that method.")
        head = f"{'workload':<9} {'prec':<4} {'method':<6} {'engine':<11} {'widthlab s':>10} "
        head += " ".join(f"{r + ' s':>9} {r + '/wl':>9}" for r in refs)
        print(head + f" {'GFLOP/s':>8} {'% peak':>7} {'vs dense':>8}")
    for workload, precision in workloads:
        libs = [("widthlab", m) for m in methods] + [(r, None) for r in refs]
        times = {l: [] for l in libs}
        engines, flops = {}, 0.0
        for _ in range(rounds if workload in LONG else max(rounds, args.small_rounds)):
            for lib, method in libs:
                r = one(lib, workload, precision, method or "dense")
                times[(lib, method)] += r["seconds"]
                flops = r.get("flops", flops)
                if lib == "widthlab":
                    engines[method] = r["engine"]
        med = {l: statistics.median(t) for l, t in times.items()}
        top = peak[f"{precision}_gflops"]
        for method in methods:
            wl = med[("widthlab", method)]
            line = f"{workload:<9} {precision:<4} {method:<6} {engines[method]:<11} {wl:>10.4f} "
            line += " ".join(f"{med[(r, None)]:>9.4f} {med[(r, None)] / wl:>9.2f}" for r in refs)
            gflops = flops / wl / 1e9
            line += f" {gflops:>8.1f} {100 * gflops / top:>6.0f}% {wl / med[('widthlab', methods[0])]:>8.2f}"
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
