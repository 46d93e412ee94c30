"""Ray/box intersection and occupancy-grid marching (through the public ops: kernel or twin)."""

from __future__ import annotations

import math

import pytest
import torch

from nerfgen.cameras import Rays
from nerfgen.ops import grid_lookup, ray_aabb_intersect, traverse_grids, traverse_grids_torch
from nerfgen.ops.march import _steps_to, _t_of_step
from nerfgen.render import OccGridConfig, OccupancyGrid

BOX = torch.tensor([[-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]])


def _rays(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 3
    target = torch.rand(n, 3, generator=g) * 1.6 - 0.8
    return origins, torch.nn.functional.normalize(target - origins, dim=-1)


def test_intersect_hits_and_misses():
    o = torch.tensor([[0.0, 0.0, -3.0], [0.0, 5.0, -3.0], [0.0, 0.0, 0.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    t0, t1, hit = ray_aabb_intersect(o, d, BOX)
    assert hit[:, 0].tolist() == [True, False, True]
    assert t0[0, 0] == 2.0 and t1[0, 0] == 4.0
    assert t0[2, 0] == 0.0 and t1[2, 0] == 1.0  # origin inside: starts at the near plane


def test_cone_steps_closed_form_matches_iteration():
    step, cone = 0.01, 1 / 64
    t0 = torch.tensor([0.2, 1.5])
    for i in range(2):
        t = float(t0[i])
        for k in range(200):
            assert math.isclose(float(_t_of_step(t0[i : i + 1], torch.tensor([float(k)]), step, cone)), t, rel_tol=1e-4)
            t += max(step, cone * t)
    n = _steps_to(t0, torch.tensor([3.0, 3.0]), step, cone)
    for i in range(2):
        assert float(_t_of_step(t0[i], n[i].float(), step, cone)) >= 3.0 - 1e-4
        assert float(_t_of_step(t0[i], n[i].float() - 1, step, cone)) < 3.0


def _random_grid(res=16, seed=0, levels=1):
    g = torch.Generator().manual_seed(seed)
    bins = torch.rand(levels, res, res, res, generator=g) > 0.7
    aabbs = torch.cat([BOX * 2**lvl for lvl in range(levels)])
    return bins, aabbs


def test_marching_properties():
    bins, aabbs = _random_grid(levels=2)
    o, d = _rays(200)
    s = traverse_grids(o, d, bins, aabbs, near_plane=0.0, far_plane=1e10, step_size=0.02, cone_angle=0.01)
    assert len(s) > 0
    assert bool((s.ray_indices[1:] >= s.ray_indices[:-1]).all()), "samples sorted by ray"
    assert bool((s.t_ends > s.t_starts).all())
    same = s.ray_indices[1:] == s.ray_indices[:-1]
    assert bool((s.t_starts[1:][same] >= s.t_ends[:-1][same] - 1e-6).all()), "non-overlapping per ray"
    mids = o[s.ray_indices] + d[s.ray_indices] * ((s.t_starts + s.t_ends) / 2)[:, None]
    assert bool(grid_lookup(mids, bins, aabbs).all()), "every midpoint in an occupied cell"


def test_marching_edge_cases():
    bins, aabbs = _random_grid()
    empty = traverse_grids(torch.zeros(0, 3), torch.zeros(0, 3), bins, aabbs, 0.0, 1e10, 0.02)
    assert len(empty) == 0
    miss = traverse_grids(torch.tensor([[0.0, 5.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]), bins, aabbs, 0.0, 1e10, 0.02)
    assert len(miss) == 0
    full = torch.ones_like(bins)
    one = traverse_grids(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]), full, aabbs, 0.0, 1e10, 0.5)
    assert len(one) == 4 and math.isclose(float(one.t_starts[0]), 2.0) and math.isclose(float(one.t_ends[-1]), 4.0)


def test_grid_sampler_early_termination_drops_samples_behind_a_wall():
    est = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=16, render_step_size=0.02, march_round=8,
                                                    coarse_while_dense=False))
    o = torch.tensor([[0.0, 0.0, -3.0]] * 3)
    d = torch.tensor([[0.0, 0.0, 1.0]] * 3)

    def sigma_fn(t0, t1, ri):  # an opaque wall at t = 2.5 (z = -0.5)
        return torch.where((t0 + t1) / 2 > 2.5, 1e4, 0.0)

    s = est.sample(Rays(o, d), sigma_fn=sigma_fn)
    assert len(s) == 3 * 26  # 25 empty samples before the wall plus the one that makes it opaque
    assert float(s.t_ends.max()) <= 2.52 + 1e-5


def test_grouped_marching_keeps_the_samples_of_occupied_cells():
    bins, aabbs = _random_grid(res=16, seed=2)
    o, d = _rays(300, seed=4)
    plain = traverse_grids_torch(o, d, bins, aabbs, 0.0, 1e10, step_size=0.01)
    grouped = traverse_grids_torch(o, d, bins, aabbs, 0.0, 1e10, step_size=0.01, group=6)  # 0.06 < cell / 2
    key = lambda s: set(zip(s.ray_indices.tolist(), [round(t, 5) for t in s.t_starts.tolist()]))
    missing = key(plain) - key(grouped)
    assert key(grouped) <= key(plain)
    assert len(missing) <= 0.01 * len(plain), "only slivers of cells crossed between group ends may be missed"


def test_grid_updates_keep_every_cell_until_the_warmup_ends():
    est = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=8, update_every=16, warmup_steps=64))

    def ball(x):  # density only near the centre
        return torch.where(x.norm(dim=-1) < 0.5, 100.0, 0.0)

    assert est.update(16, ball) and est.binaries.all()  # young field: nothing carved yet
    assert est.update(48, ball) and est.binaries.all()
    assert est.update(64, ball)
    assert 0 < est.occupancy_fraction() < 0.2 and bool(est.binaries[0, 4, 4, 4])
    assert est.occupancy_fraction() == float(est.binaries.float().mean())  # counted once per change of the grid
    est.binaries[:] = True
    assert est.occupancy_fraction() == 1.0
    est.load_state_dict({**est.state_dict(), "binaries": torch.zeros_like(est.binaries)})
    assert est.occupancy_fraction() == 0.0


def test_coarse_marching_only_early_in_training():
    grid = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=8, coarse_steps=100))
    fine = grid.step_size  # the grid starts all occupied: the coarsest level while it may coarsen
    assert grid.current_step_size() == fine  # a run being rendered, not trained, marches finely
    grid.update(50, lambda x: torch.ones(x.shape[0]))
    assert grid.current_step_size() == 8 * fine
    grid.update(100, lambda x: torch.ones(x.shape[0]))
    assert grid.current_step_size() == fine  # however full the grid gets again later


def test_previews_march_at_most_256_steps_across_the_box():
    diagonal = 2 * math.sqrt(3)
    for steps, preview_steps in ((342, 171), (512, 256), (1024, 256)):
        grid = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=8, diagonal_steps=steps))
        assert grid.preview().step_size == pytest.approx(diagonal / preview_steps)
        assert grid.step_size == pytest.approx(diagonal / steps)  # the grid itself is untouched


def test_early_termination_in_one_pass_keeps_what_rounds_keep():
    o, d = _rays(200, seed=5)
    g = torch.Generator().manual_seed(6)
    density = torch.rand(16, 16, 16, generator=g) ** 4 * 400  # a few dense cells among faint ones

    def sigma_fn(t0, t1, ri):
        x = o[ri] + d[ri] * ((t0 + t1) / 2)[:, None]
        ijk = ((x + 1) / 2 * 16).long().clamp(0, 15)
        return density[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    keeps = []
    for march_round in (4, 1 << 16):  # rounds of 4 samples, or every ray's samples in one
        est = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=16, render_step_size=0.02, march_round=march_round,
                                                        coarse_while_dense=False))
        keeps.append(est.sample(Rays(o, d), sigma_fn=sigma_fn))
    assert len(keeps[1]) < len(est.sample(Rays(o, d)))  # termination dropped samples
    assert torch.equal(keeps[0].ray_indices, keeps[1].ray_indices) and torch.equal(keeps[0].t_starts, keeps[1].t_starts)


class _Ball(torch.nn.Module):
    """An opaque ball of radius 0.5 in a faint haze, coloured by position: a field with early termination."""

    aabb = BOX[0]

    def density(self, x, cond=None):
        return torch.where(x.norm(dim=-1) < 0.5, 300.0, 0.5)

    def forward(self, x, d, cond=None):
        from nerfgen.fields import FieldOutput

        return FieldOutput(self.density(x), (x + 1) / 2)


@pytest.mark.parametrize("march_round", [256, 40])  # every ray's samples in a round; some rays longer
def test_renders_leaving_termination_to_compositing_draw_the_same_image(march_round):
    from nerfgen.render.renderer import render_rays, render_rays_chunked

    o, d = _rays(400, seed=7)
    est = OccupancyGrid(BOX[0], 1, OccGridConfig(resolution=16, render_step_size=0.02, coarse_while_dense=False,
                                                    march_round=march_round))
    with torch.no_grad():
        terminated = render_rays(_Ball(), est, Rays(o, d), torch.ones(3))
        deferred = render_rays_chunked(_Ball(), est, Rays(o, d), torch.ones(3), chunk=150)
    assert deferred.n_samples >= terminated.n_samples  # short rays' samples all shaded, compositing stops them
    assert deferred.n_samples > terminated.n_samples or march_round < 256
    torch.testing.assert_close(deferred.rgb, terminated.rgb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(deferred.depth, terminated.depth, rtol=1e-5, atol=1e-5)


def test_pixel_step_follows_the_pixel_footprint_between_its_bounds():
    cfg = OccGridConfig(pixel_step=1.5, diagonal_steps=1000, min_diagonal_steps=100)
    assert cfg.for_footprint(0.04, 10.0).render_step_size == pytest.approx(0.06)
    assert cfg.for_footprint(0.001, 10.0).render_step_size == pytest.approx(0.01)  # no finer than 1000 steps
    assert cfg.for_footprint(0.2, 10.0).render_step_size == pytest.approx(0.1)  # no coarser than 100
    assert OccGridConfig(diagonal_steps=1000).for_footprint(0.004, 10.0).render_step_size == 0  # pixel_step 0: off
    chosen = OccGridConfig(pixel_step=1.5, render_step_size=0.02)
    assert chosen.for_footprint(0.004, 10.0) is chosen  # a step given (or recorded by a run) stays
    with pytest.raises(ValueError, match="min_diagonal_steps"):
        OccGridConfig(pixel_step=1.0, diagonal_steps=100, min_diagonal_steps=200).validate("cfg")


def test_the_default_config_marches_lego_at_full_size_finely_and_small_images_as_before():
    """configs/ngp.yaml sizes the step from the views' pixel footprint (1.4 of it): about 1024 steps
    across the box for lego's 800x800 views (31.9 dB after 20 minutes against 30.5 with 342
    steps), about 512 at 400x400, and the coarsest, 342, at 100x100 (27.4 dB after 600 steps,
    where 1024 steps give 24.5)."""
    from types import SimpleNamespace

    from nerfgen.cameras import Cameras
    from nerfgen.config import config_path, load_config
    from nerfgen.reconstruct import TrainConfig
    from nerfgen.reconstruct.scene import model_setup

    cfg = load_config(TrainConfig, config_path("ngp"))
    angles = torch.linspace(0, 2 * math.pi, 9)[:-1]
    c2w = torch.eye(4)[:3].repeat(8, 1, 1)
    c2w[:, :, 3] = torch.stack([4.03 * angles.cos(), 4.03 * angles.sin(), torch.zeros(8)], -1)
    n = torch.full((8,), 1111.1)
    full = Cameras(c2w, n, n, n * 0 + 400, n * 0 + 400, 800, 800)
    box = torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5])
    steps = {}
    for factor in (1, 2, 8):
        data = SimpleNamespace(cameras=full.scaled(factor), aabb=box, cascades=1)
        spec, _, _ = model_setup(cfg, data)
        steps[factor] = float((box[3:] - box[:3]).norm()) / spec.grid.render_step_size
    assert 1000 < steps[1] <= 1024 and 500 < steps[2] < 520 and steps[8] == pytest.approx(342), steps
