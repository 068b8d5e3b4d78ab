"""The same mathematics as widthlab's dense engine, in NumPy or PyTorch, for side-by-side timing.

usage: reference.py {numpy,torch} WORKLOAD PRECISION REPS   -> one JSON line with the seconds.
       reference.py peak                                   -> the best GEMM rate of NumPy's BLAS.

One repetition = the workload's trials (networks) at each of its widths; one trial: fresh Gaussian weights N(0, 2/n_l) for every layer, all samples
batched through the network (matrix-matrix products), softmax cross-entropy head with 20
classes and a random probability-vector target, back-propagation of the output error, and the
per-layer forward ratio ||h^l||/||x|| and gradient ratio ||delta^l|| ||h^{l-1}|| / (||x|| ||delta^L||)
for every sample. The sweep repeats this at each width and pools |1 - r|.
"""
import json
import sys
import time

# n0, depth, widths (one per sweep point), samples, trials (networks per point)
WORKLOADS = {
    "w1": (500, 10, [1000], 256, 1),
    "w2": (512, 50, [512], 128, 1),
    "w3": (500, 10, [4000], 2000, 1),
    "fig6": (500, 10, [500, 1000, 2000, 4000], 2000, 1),
    "w1x16": (500, 10, [1000], 256, 16),
    "w2x16": (512, 50, [512], 128, 16),
    "sweep4x8": (500, 10, [250, 500, 750, 1000], 256, 8),
    # Where widthlab's exact sampler applies (its default method takes the Gram recursion).
    "gram_l50": (1000, 50, [1000], 16, 1),
    "gram_l10": (4000, 10, [4000], 64, 1),
}
CLASSES = 20


def numpy_trial(np, rng, n0, depth, width, samples, dtype):
    x = rng.standard_normal((samples, n0), dtype=dtype)
    hs, ws = [x], []
    for _ in range(depth):
        fan_in = hs[-1].shape[1]
        w = rng.standard_normal((width, fan_in), dtype=dtype)
        w *= dtype(np.sqrt(2.0 / width))
        a = hs[-1] @ w.T
        np.maximum(a, 0, out=a)
        hs.append(a)
        ws.append(w)
    norms = [np.linalg.norm(h, axis=1) for h in hs]
    forward = [n / norms[0] for n in norms[1:]]
    w_out = rng.standard_normal((CLASSES, width), dtype=dtype)
    z = hs[-1] @ w_out.T
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    t = rng.random((samples, CLASSES), dtype=dtype)
    t /= t.sum(axis=1, keepdims=True)
    d = ((p - t) @ w_out) * (hs[-1] > 0)
    d_last = np.linalg.norm(d, axis=1)
    gradient = [None] * depth
    for l in range(depth, 0, -1):
        gradient[l - 1] = np.linalg.norm(d, axis=1) * norms[l - 1] / (norms[0] * d_last)
        if l > 1:
            d = (d @ ws[l - 1]) * (hs[l - 1] > 0)
    return np.stack(forward), np.stack(gradient)


def torch_trial(torch, gen, n0, depth, width, samples, dtype):
    x = torch.randn((samples, n0), generator=gen, dtype=dtype)
    hs, ws = [x], []
    for _ in range(depth):
        fan_in = hs[-1].shape[1]
        w = torch.randn((width, fan_in), generator=gen, dtype=dtype) * (2.0 / width) ** 0.5
        a = torch.relu(hs[-1] @ w.T)
        hs.append(a)
        ws.append(w)
    norms = [torch.linalg.vector_norm(h, dim=1) for h in hs]
    forward = [n / norms[0] for n in norms[1:]]
    w_out = torch.randn((CLASSES, width), generator=gen, dtype=dtype)
    p = torch.softmax(hs[-1] @ w_out.T, dim=1)
    t = torch.rand((samples, CLASSES), generator=gen, dtype=dtype)
    t = t / t.sum(dim=1, keepdim=True)
    d = ((p - t) @ w_out) * (hs[-1] > 0)
    d_last = torch.linalg.vector_norm(d, dim=1)
    gradient = [None] * depth
    for l in range(depth, 0, -1):
        gradient[l - 1] = torch.linalg.vector_norm(d, dim=1) * norms[l - 1] / (norms[0] * d_last)
        if l > 1:
            d = (d @ ws[l - 1]) * (hs[l - 1] > 0)
    return torch.stack(forward), torch.stack(gradient)


def blas_peak():
    """GFLOP/s of NumPy's matrix product at 4000 x 4000 (f64 and f32), best of 5."""
    import numpy as np

    out = {}
    for name, dtype in [("f64", np.float64), ("f32", np.float32)]:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((4000, 4000)).astype(dtype)
        b = rng.standard_normal((4000, 4000)).astype(dtype)
        best = 0.0
        for _ in range(5):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * 4000**3 / (time.perf_counter() - start) / 1e9)
        out[name] = best
    print(json.dumps({"lib": "numpy", "blas_gflops": out}))


def main():
    if sys.argv[1] == "peak":
        return blas_peak()
    lib, workload, precision, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    n0, depth, widths, samples, trials = WORKLOADS[workload]
    seconds = []
    if lib == "numpy":
        import numpy as np

        dtype = np.float32 if precision == "f32" else np.float64
        for rep in range(reps):
            rng = np.random.default_rng(1000 + rep)
            start = time.perf_counter()
            pooled = []
            for width in widths:
                for _ in range(trials):
                    fwd, grad = numpy_trial(np, rng, n0, depth, width, samples, dtype)
                    pooled.append(float(np.abs(1 - fwd).mean()))
            seconds.append(time.perf_counter() - start)
    else:
        import torch

        torch.set_num_threads(2)
        dtype = torch.float32 if precision == "f32" else torch.float64
        for rep in range(reps):
            gen = torch.Generator().manual_seed(1000 + rep)
            start = time.perf_counter()
            with torch.no_grad():
                for width in widths:
                    for _ in range(trials):
                        fwd, grad = torch_trial(torch, gen, n0, depth, width, samples, dtype)
                        float((1 - fwd).abs().mean())
            seconds.append(time.perf_counter() - start)
    print(json.dumps({"lib": lib, "workload": workload, "precision": precision, "seconds": seconds}))


if __name__ == "__main__":
    main()
