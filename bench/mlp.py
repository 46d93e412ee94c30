"""The lego field's MLPs against the CPU's fp32 FMA peak: torch's layers and the fused kernel,
forward + backward on one training step's worth of samples, in one run.

    python bench/mlp.py [--samples 32768 --repeats 9]

The peak is ``cores x GHz x FMA units x 8 lanes x 2 FLOPs``: an AVX2 FMA does 8 fp32
multiply-adds, a core of this CPU (AMD Zen 4, like Zen 2/3 and Intel's big cores) issues two a
cycle. ``bench/fma_peak.cpp`` measures it: 12 independent FMA chains a thread, 1 and ``threads``
threads, from which the effective clock (GHz = GFLOP/s / 32 per core) follows. The MLPs' FLOPs are
counted, not timed: ``2 sum(in x out)`` a sample forward over the five layers of configs/ngp.yaml's
field (32-64-16 density, 31-64-64-3 colour; 18,688 FLOPs), twice that backward (input and weight
gradients; the fused kernel's recomputed forward is not counted); ``fraction`` is that rate over
the measured peak at the same thread count.

One JSON line for the peak, one per implementation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nerfgen.ops.mlp import fused_mlp_avx2, ngp_mlp, ngp_mlp_torch  # noqa: E402

DIMS = [(64, 32), (16, 64), (64, 31), (64, 64), (3, 64)]
"""(out, in) of the lego field's layers: density 32-64-16, colour (16 SH + 15) 31-64-64-3."""


def fma_peak(threads: int) -> dict:
    """Measured fp32 FMA GFLOP/s at 1 and ``threads`` threads (best of three)."""
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "fma_peak"
        subprocess.run(["g++", "-O2", "-mavx2", "-mfma", "-fopenmp", str(REPO / "bench" / "fma_peak.cpp"), "-o",
                        str(exe)], check=True)
        out = {}
        for t in sorted({1, threads}):
            runs = [float(subprocess.run([str(exe), str(t)], check=True, capture_output=True, text=True).stdout.split()[2])
                    for _ in range(3)]
            out[t] = max(runs)
    ghz = out[1] / 32
    return {"figure": "fma_peak", "gflops_1_thread": round(out[1], 1), f"gflops_{threads}_threads": round(out[threads], 1),
            "effective_ghz": round(ghz, 2), "formula": f"{threads} cores x {ghz:.2f} GHz x 2 FMA units x 8 lanes x 2",
            "nominal_gflops": round(threads * ghz * 2 * 8 * 2, 1)}


def time_mlp(fn, n: int, repeats: int) -> tuple[float, float]:
    """Median seconds of forward + backward and of forward alone on ``n`` samples."""
    g = torch.Generator().manual_seed(0)
    weights = [(torch.randn(o, i, generator=g) / i**0.5).requires_grad_() for o, i in DIMS]
    biases = [(torch.randn(o, generator=g) * 0.1).requires_grad_() for o, _ in DIMS]
    enc = torch.randn(n, 32, generator=g).requires_grad_()
    sh = torch.randn(n, 16, generator=g)
    cot = (torch.randn(n, generator=g), torch.randn(n, 3, generator=g))

    def step():
        out = fn(enc, sh, weights, biases, 2)
        torch.autograd.grad(out, [enc, *weights, *biases], cot)

    def forward():
        with torch.no_grad():
            fn(enc, sh, weights, biases, 2)

    times = {}
    for name, f in (("step", step), ("forward", forward)):
        f()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            f()
            samples.append(time.perf_counter() - start)
        times[name] = statistics.median(samples)
    return times["step"], times["forward"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32768, help="samples a call (a training step's worth)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    peak = fma_peak(threads)
    print(json.dumps(peak), flush=True)
    flops = 2 * sum(o * i for o, i in DIMS)
    for name, fn in (("torch", ngp_mlp_torch), ("fused", ngp_mlp)):
        step, forward = time_mlp(fn, args.samples, args.repeats)
        achieved = 3 * flops * args.samples / step / 1e9
        print(json.dumps({
            "figure": "mlp", "implementation": name, "samples": args.samples, "threads": threads,
            "fwd_bwd_ms": round(1000 * step, 2), "fwd_ms": round(1000 * forward, 2),
            "fwd_bwd_gflops": round(achieved, 1), "fwd_gflops": round(flops * args.samples / forward / 1e9, 1),
            "fraction_of_fma_peak": round(achieved / peak[f"gflops_{threads}_threads"], 3),
            "avx2": fused_mlp_avx2() if name == "fused" else None,
        }), flush=True)


if __name__ == "__main__":
    main()
