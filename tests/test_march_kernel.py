"""The compiled marching kernels (cuda/src/march*) against their torch twins, and their properties.

The kernel skips empty cells but must keep exactly the twin's samples: with uniform steps the t
values are the same float32 expressions (compared exactly); with cone stepping exp/log may round
differently by an ulp or two (glibc, SLEEF, CUDA's libdevice): samples are matched per ray to
1e-5 relative, and the kept sets may differ only where a midpoint or a ray's last step lies
within rounding of a cell face or the box.
"""

from __future__ import annotations

import subprocess

import pytest
import torch

from nerfgen.ops import grid_lookup, ray_aabb_intersect, ray_aabb_intersect_torch, traverse_grids, traverse_grids_torch
from tests.kernels import CXX, NVCC, REPO


def grid(levels: int, res: int, density: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    binaries = torch.rand(levels, res, res, res, generator=g) < density
    box = torch.tensor([-1.0, -0.8, -1.2, 1.0, 1.2, 0.8])
    center, half = (box[:3] + box[3:]) / 2, (box[3:] - box[:3]) / 2
    aabbs = torch.stack([torch.cat([center - half * 2**lvl, center + half * 2**lvl]) for lvl in range(levels)])
    return binaries, aabbs


def rays(n: int, seed: int, inside: bool = False):
    """Rays from a sphere of radius 4 (or from inside the box) at random targets, plus axis-aligned
    and near-axis-aligned ones (tiny direction components)."""
    g = torch.Generator().manual_seed(seed)
    if inside:
        origins = torch.rand(n, 3, generator=g) * 1.6 - 0.8
    else:
        origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 4
    targets = torch.rand(n, 3, generator=g) * 2.4 - 1.2
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    axis = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, -1, 0], [1e-13, 1.0, 0.0], [3e-7, -1.0, 1e-9]])
    axis = torch.nn.functional.normalize(axis, dim=-1)
    origins = torch.cat([origins, torch.tensor([[0.1, 0.2, -4.0], [-4, 0.3, 0.1], [0.2, 4, -0.3], [0.5, -4, 0.3],
                                                [0.4, 4, -0.2]])])
    return origins, torch.cat([directions, axis])


def unmatched(a, b, rtol: float = 1e-5) -> int:
    """Samples of ``a`` with no sample of ``b`` on the same ray starting within ``rtol`` (relative)."""
    if len(a) == 0 or len(b) == 0:
        return len(a)
    span = float(torch.cat([a.t_ends, b.t_ends]).abs().max()) + 1.0  # rays side by side on one axis
    ka = a.ray_indices.double() * span + a.t_starts.double()
    kb = (b.ray_indices.double() * span + b.t_starts.double()).sort().values
    right = torch.searchsorted(kb, ka).clamp(max=len(kb) - 1)
    left = (right - 1).clamp(min=0)
    gap = torch.minimum((kb[right] - ka).abs(), (kb[left] - ka).abs())
    return int((gap > rtol * a.t_starts.double().abs().clamp(min=1.0)).sum())


def assert_same_samples(a, b, exact: bool):
    if exact:
        assert torch.equal(a.ray_indices, b.ray_indices)
        assert torch.equal(a.t_starts, b.t_starts) and torch.equal(a.t_ends, b.t_ends)
        return
    differ = unmatched(a, b) + unmatched(b, a)
    assert differ <= max(2, 1e-3 * len(b)), f"{differ} of {len(a)} / {len(b)} samples differ"
    if len(a) == len(b) and torch.equal(a.ray_indices, b.ray_indices):
        torch.testing.assert_close(a.t_starts, b.t_starts, rtol=1e-6, atol=1e-6)


GRID_CASES = [(1, 16, 0.3), (1, 32, 0.05), (3, 16, 0.2), (2, 8, 1.0), (2, 16, 0.0)]
"""(cascades, resolution, occupied fraction) of the grids the kernel is compared on."""


def assert_march_properties(s, o, d, binaries, aabbs):
    """Samples sorted by ray, non-empty, non-overlapping per ray, midpoints in occupied cells."""
    assert bool((s.ray_indices[1:] >= s.ray_indices[:-1]).all()), "samples sorted by ray"
    assert bool((s.t_ends > s.t_starts).all())
    same = s.ray_indices[1:] == s.ray_indices[:-1]
    assert bool((s.t_starts[1:][same] >= s.t_ends[:-1][same]).all()), "non-overlapping per ray"
    mids = o[s.ray_indices] + d[s.ray_indices] * ((s.t_starts + s.t_ends) / 2)[:, None]
    assert bool(grid_lookup(mids, binaries, aabbs).all()), "every midpoint in an occupied cell"


@pytest.mark.parametrize("levels,res,density", GRID_CASES)
@pytest.mark.parametrize("cone", [0.0, 1 / 64])
@pytest.mark.parametrize("jitter", [False, True])
def test_kernel_keeps_the_twins_samples(kernels, levels, res, density, cone, jitter):
    binaries, aabbs = grid(levels, res, density, seed=levels * 100 + res)
    o, d = rays(300, seed=res, inside=density > 0.9)
    j = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(9)) if jitter else None
    args = (o, d, binaries, aabbs, 0.05, 20.0, 0.013, cone, j)
    got, ref = traverse_grids(*args), traverse_grids_torch(*args)
    assert got.t_starts.dtype == torch.float32 and got.ray_indices.dtype == torch.long
    assert_same_samples(got, ref, exact=cone == 0)


def test_marching_properties_on_a_cascaded_grid(kernels):
    binaries, aabbs = grid(3, 32, 0.1, seed=5)
    o, d = rays(2000, seed=6)
    s = traverse_grids(o, d, binaries, aabbs, 0.0, 1e10, step_size=0.005, cone_angle=1 / 256)
    assert len(s) > 1000
    assert_march_properties(s, o, d, binaries, aabbs)


def test_edge_cases(kernels):
    binaries, aabbs = grid(1, 16, 0.5, seed=1)
    none = traverse_grids(torch.zeros(0, 3), torch.zeros(0, 3), binaries, aabbs, 0.0, 1e10, 0.02)
    assert len(none) == 0 and none.n_rays == 0
    miss = traverse_grids(torch.tensor([[0.0, 5.0, -4.0]]), torch.tensor([[0.0, 0.0, 1.0]]), binaries, aabbs,
                          0.0, 1e10, 0.02)
    assert len(miss) == 0 and miss.n_rays == 1
    full = torch.ones_like(binaries)
    box = torch.tensor([[-1.0, -1, -1, 1, 1, 1]])
    one = traverse_grids(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]), full, box, 0.0, 1e10, 0.5)
    assert one.t_starts.tolist() == [2.0, 2.5, 3.0, 3.5] and one.t_ends.tolist() == [2.5, 3.0, 3.5, 4.0]
    single = traverse_grids(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]), full, box, 0.0, 1e10, 5.0)
    assert single.t_starts.tolist() == [2.0] and single.t_ends.tolist() == [4.0]


def test_float64_and_rays_needing_gradients_take_the_twin(kernels):
    binaries, aabbs = grid(1, 16, 0.5, seed=1)
    o, d = rays(50, seed=2)
    s64 = traverse_grids(o.double(), d.double(), binaries, aabbs.double(), 0.0, 1e10, 0.02)
    assert s64.t_starts.dtype == torch.float64
    o_rg = o.clone().requires_grad_()
    t_min, _, _ = ray_aabb_intersect(o_rg, d, aabbs)
    assert t_min.requires_grad


def test_intersect_kernel_matches_twin(kernels):
    o, d = rays(500, seed=3)
    boxes = torch.tensor([[-1.0, -1, -1, 1, 1, 1], [-0.5, 0, -0.2, 0.5, 0.3, 0.9], [2, 2, 2, 3, 3, 3]])
    for near, far in ((0.0, 1e10), (3.5, 4.5)):
        got = ray_aabb_intersect(o, d, boxes, near, far)
        ref = ray_aabb_intersect_torch(o, d, boxes, near, far)
        for a, b in zip(got, ref):
            assert torch.equal(a, b)


def test_opcheck(kernels):
    binaries, aabbs = grid(2, 16, 0.3, seed=4)
    o, d = rays(64, seed=4)
    jitter = torch.rand(o.shape[0], generator=torch.Generator().manual_seed(1))
    ops = torch.ops.nerfgen
    torch.library.opcheck(ops.ray_aabb_intersect.default, (o, d, aabbs, 0.0, 1e10))
    for j in (None, jitter):
        torch.library.opcheck(ops.traverse_grids.default, (o, d, binaries, aabbs, j, 0.0, 1e10, 0.01, 0.004))


def test_bad_arguments_raise(kernels):
    binaries, aabbs = grid(2, 16, 0.3, seed=4)
    o, d = rays(8, seed=4)
    with pytest.raises(ValueError, match="binaries must be"):
        traverse_grids(o, d, binaries, aabbs[:1], 0.0, 1e10, 0.01)
    with pytest.raises(ValueError, match="step_size > 0"):
        traverse_grids(o, d, binaries, aabbs, 0.0, 1e10, 0.0)
    with pytest.raises(RuntimeError, match="jitter must be"):  # the op checks too, for direct callers
        torch.ops.nerfgen.traverse_grids(o, d, binaries, aabbs, torch.rand(3), 0.0, 1e10, 0.01, 0.0)


@pytest.mark.parametrize("source", ["march_cpu.cpp", "volrend_cpu.cpp"])
def test_cpu_sources_compile_without_torch(source):
    cmd = [CXX, "-std=c++17", "-O1", "-fopenmp", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "cuda" / "include"),
           "-c", str(REPO / "cuda" / "src" / source), "-o", "/dev/null"]
    subprocess.run(cmd, check=True, timeout=120)


@pytest.mark.parametrize("source", ["march.cu", "volrend.cu"])
@pytest.mark.parametrize("arch", ["sm_75", "sm_80", "sm_90"])
def test_cuda_sources_compile_with_nvcc(source, arch):
    if NVCC is None:
        pytest.skip("nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)")
    cmd = [NVCC, "-c", "-std=c++17", f"-arch={arch}", "-Xcompiler", "-Wall", "-Werror", "all-warnings",
           "-I", str(REPO / "cuda" / "include"), str(REPO / "cuda" / "src" / source), "-o", "/dev/null"]
    subprocess.run(cmd, check=True, timeout=300)
