"""Scene contraction, the proposal sampler, and the distortion / interlevel losses."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nerfgen.cameras import Rays
from nerfgen.config import build_config, config_path, load_config
from nerfgen.fields import FieldOutput, NGPField, NGPFieldConfig, RadianceField
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.render import (
    ModelSpec,
    ProposalConfig,
    ProposalSampler,
    RadianceModel,
    StratifiedSampler,
    contract,
    contract_to_unit,
    distortion_loss,
    interlevel_loss,
    outer_weights,
    render_rays,
)
from nerfgen.render.proposal import anneal_exponent, sample_pdf

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])
KINDS = ["linf", "l2"]


def _norm(x, kind):
    return x.abs().amax(-1) if kind == "linf" else x.norm(dim=-1)


def _directions(n, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=dtype), dim=-1)


# -- contraction ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_contraction_is_the_identity_inside_and_bounded_by_two_outside(kind):
    d = _directions(512)
    unit_ball = d / _norm(d, kind)[:, None]  # on the norm's unit sphere
    inside = unit_ball * torch.rand(512, 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(contract(inside, kind), inside)
    far = unit_ball * torch.tensor([1.5, 10.0, 1e3, 1e8, 1e30]).repeat_interleave(512 // 5 + 1)[:512, None]
    out = contract(far, kind)
    assert torch.isfinite(out).all() and (_norm(out, kind) <= 2.0 + 1e-6).all() and (_norm(out, kind) > 1.0).all()
    # the norm of the result is 2 - 1/||x||, the direction is kept
    torch.testing.assert_close(_norm(out, kind), 2.0 - 1.0 / _norm(far, kind), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.nn.functional.normalize(out, dim=-1), torch.nn.functional.normalize(unit_ball, dim=-1))


@pytest.mark.parametrize("kind", KINDS)
def test_contraction_is_continuous_at_the_boundary(kind):
    d = _directions(256, dtype=torch.float64)
    on = d / _norm(d, kind)[:, None]
    for eps in (1e-3, 1e-6):
        gap = (contract(on * (1 + eps), kind) - contract(on * (1 - eps), kind)).norm(dim=-1)
        assert float(gap.max()) < 3 * eps * math.sqrt(3)


@pytest.mark.parametrize("kind", KINDS)
def test_contraction_is_monotone_along_rays(kind):
    """Along a ray from the centre, contracted points move outwards; from any origin, the contracted
    norm orders points as their norm does."""
    t = torch.logspace(-3, 6, 400, dtype=torch.float64)
    d = _directions(32, dtype=torch.float64)
    points = d[:, None, :] * t[None, :, None]  # [32, 400, 3]
    norms = _norm(contract(points, kind), kind)
    assert (norms[:, 1:] > norms[:, :-1]).all()
    origins = torch.rand(32, 1, 3, dtype=torch.float64) * 2 - 1
    x = origins + points
    order = _norm(x, kind).argsort(-1)
    contracted = _norm(contract(x, kind), kind).gather(1, order)
    assert (contracted[:, 1:] >= contracted[:, :-1]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_contraction_gradients_are_right_and_finite(kind):
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(6, 3, generator=g, dtype=torch.float64) * torch.tensor([[0.3], [0.5], [2.0], [5.0], [40.0], [0.1]],
                                                                         dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: contract(p, kind), (x,))
    extreme = torch.tensor([[0.0, 0, 0], [1e20, -3e19, 2.0], [1.0, 1.0, 1.0], [-1e-30, 0, 0]], requires_grad=True)
    contract(extreme, kind).sum().backward()
    assert torch.isfinite(extreme.grad).all()


def test_contract_to_unit_puts_the_inner_box_in_the_middle_half():
    aabb = torch.tensor([-2.0, 0.0, 1.0, 2.0, 4.0, 3.0])
    corners = torch.tensor([[-2.0, 0.0, 1.0], [2.0, 4.0, 3.0], [0.0, 2.0, 2.0]])
    torch.testing.assert_close(contract_to_unit(corners, aabb), torch.tensor([[0.25] * 3, [0.75] * 3, [0.5] * 3]))
    far = torch.tensor([[1e9, -1e9, 5.0]])
    unit = contract_to_unit(far, aabb)
    assert ((unit >= 0) & (unit <= 1)).all() and unit[0, 0] > 0.99 and unit[0, 1] < 0.01


def test_normalize_without_contraction_is_unchanged_and_with_it_everything_is_inside():
    field = NGPField(torch.tensor([-1.0, -2, -1, 1, 2, 3]), NGPFieldConfig(n_levels=2, log2_table_size=8))
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0)) * 3
    unit, inside = field.normalize(x)
    lo, hi = field.aabb[:3], field.aabb[3:]
    expected = (x - lo) / (hi - lo)
    assert torch.equal(unit, expected.clamp(0.0, 1.0))
    assert torch.equal(inside, ((expected >= 0) & (expected <= 1)).all(-1)) and not inside.all()
    assert (field.density(x)[~inside] == 0).all()
    field.contraction = "linf"
    unit, inside = field.normalize(x)
    assert inside.all() and ((unit > 0) & (unit < 1)).all()
    torch.testing.assert_close(unit, contract_to_unit(x, field.aabb, "linf"))
    assert (field.density(x) > 0).all()  # nothing is outside any more


# -- distortion and interlevel losses ------------------------------------------------------------
def _packed(counts, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ri = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    starts, ends = [], []
    for c in counts:
        edges = torch.rand(c + 1, generator=g, dtype=dtype).sort().values
        starts.append(edges[:-1])
        ends.append(edges[1:])
    w = torch.rand(int(ri.numel()), generator=g, dtype=dtype) * 0.3
    return w, torch.cat(starts), torch.cat(ends), ri


def _distortion_brute(w, s0, s1, ri, n_rays):
    out = torch.zeros(n_rays, dtype=w.dtype)
    mids = (s0 + s1) / 2
    for r in range(n_rays):
        i = ri == r
        wi, mi = w[i], mids[i]
        out[r] = (wi[:, None] * wi[None, :] * (mi[:, None] - mi[None, :]).abs()).sum() + (wi**2 * (s1[i] - s0[i])).sum() / 3
    return out


@pytest.mark.parametrize("counts", [[5, 0, 9, 1], [1], [0, 0, 3], [32] * 3])
def test_distortion_loss_matches_the_double_sum(counts):
    w, s0, s1, ri = _packed(counts)
    got = distortion_loss(w, s0, s1, ri, len(counts))
    torch.testing.assert_close(got, _distortion_brute(w, s0, s1, ri, len(counts)), rtol=1e-10, atol=1e-12)
    w32, s032, s132 = w.float(), s0.float(), s1.float()
    torch.testing.assert_close(distortion_loss(w32, s032, s132, ri, len(counts)).double(), got, rtol=1e-5, atol=1e-6)


def test_distortion_loss_gradients():
    w, s0, s1, ri = _packed([4, 0, 6])
    w.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: distortion_loss(x, s0, s1, ri, 3), (w,))
    # a ray whose weight sits in one narrow interval scores lower than one that spreads it
    spread = distortion_loss(torch.full((4,), 0.25), torch.tensor([0, .25, .5, .75]), torch.tensor([.25, .5, .75, 1.]),
                             torch.zeros(4, dtype=torch.long), 1)
    narrow = distortion_loss(torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([0, .25, .3, .75]),
                             torch.tensor([.25, .3, .75, 1.]), torch.zeros(4, dtype=torch.long), 1)
    assert float(narrow) < float(spread) / 10


def test_outer_weights_sum_the_overlapping_envelope_intervals():
    g = torch.Generator().manual_seed(0)
    edges = torch.rand(6, 9, generator=g, dtype=torch.float64).sort(-1).values
    env = torch.rand(6, 13, generator=g, dtype=torch.float64).sort(-1).values
    env_w = torch.rand(6, 12, generator=g, dtype=torch.float64)
    got = outer_weights(edges, env, env_w)
    expected = torch.zeros(6, 8, dtype=torch.float64)
    for r in range(6):
        for i in range(8):
            overlap = (env[r, 1:] > edges[r, i]) & (env[r, :-1] < edges[r, i + 1])
            expected[r, i] = env_w[r][overlap].sum()
    torch.testing.assert_close(got, expected)


def test_interlevel_loss_is_zero_for_a_tight_bound_and_positive_when_mass_is_missed():
    g = torch.Generator().manual_seed(0)
    edges = torch.linspace(0, 1, 17).expand(4, 17).contiguous()
    w = torch.softmax(torch.randn(4, 16, generator=g) * 3, -1) * 0.9
    assert float(interlevel_loss(edges, w, [(edges, w.clone())])) < 1e-9
    coarse = edges[:, ::4].contiguous()  # 4 intervals, each holding what 4 final ones hold: still a bound
    assert float(interlevel_loss(edges, w, [(coarse, w.view(4, 4, 4).sum(-1))])) < 1e-6
    missed = w.clone()
    missed[:, 5:9] = 0.0  # the proposal puts nothing where the final weights are
    lost = interlevel_loss(edges, w, [(edges, missed)])
    assert float(lost) > 1e-3
    prop = missed.clone().requires_grad_()
    interlevel_loss(edges, w.requires_grad_(), [(edges, prop)]).backward()
    assert w.grad is None and (prop.grad[:, 5:9] < 0).all()  # stop-gradient on the final, and more mass is asked for


# -- the sampler ---------------------------------------------------------------------------------
def _rays(n, seed=0, radius=0.5):
    g = torch.Generator().manual_seed(seed)
    return Rays(torch.randn(n, 3, generator=g) * radius, _directions(n, seed + 1))


@pytest.mark.parametrize("spacing", ["piecewise", "disparity", "linear"])
@pytest.mark.parametrize("stratified", [False, True])
def test_samples_are_packed_sorted_contiguous_and_within_near_far(spacing, stratified):
    cfg = ProposalConfig(near=0.1, far=500.0, spacing=spacing, n_proposal_samples=(24, 12), n_samples=8,
                         net_log2_table_size=10, single_jitter=False)
    sampler = ProposalSampler(BOX, cfg)
    samples = sampler.sample(_rays(50), stratified=stratified)
    assert len(samples) == 50 * 8 and samples.n_rays == 50
    assert torch.equal(samples.ray_indices, torch.arange(50).repeat_interleave(8))
    t0, t1 = samples.t_starts.view(50, 8), samples.t_ends.view(50, 8)
    assert (t1 > t0).all() and torch.equal(t0[:, 1:], t1[:, :-1])
    assert (t0 >= cfg.near).all() and (t1 <= cfg.far).all()
    s = torch.rand(1000, dtype=torch.float32)
    torch.testing.assert_close(sampler.t_to_s(sampler.s_to_t(s)), s, atol=2e-4, rtol=0)
    assert float(sampler.s_to_t(torch.tensor(0.0))) == pytest.approx(0.1)
    assert float(sampler.s_to_t(torch.tensor(1.0))) == pytest.approx(500.0, rel=1e-4)


def test_sample_pdf_follows_the_weights():
    edges = torch.linspace(0, 1, 11).expand(3, 11).contiguous()
    w = torch.zeros(3, 10)
    w[:, 7] = 1.0
    for stratified in (False, True):
        for single in (False, True):
            pts = sample_pdf(edges, w, 65, stratified, single, padding=0.01)
            assert (pts[:, 1:] >= pts[:, :-1]).all() and (pts >= 0).all() and (pts <= 1).all()
            in_bin = ((pts >= 0.7) & (pts <= 0.8)).float().mean()
            assert float(in_bin) > 0.85  # 1 / 1.1 of the mass sits in bin 7


def test_anneal_schedule_and_update():
    assert anneal_exponent(0, 100, 10.0) == 0.0 and anneal_exponent(100, 100, 10.0) == 1.0
    values = [anneal_exponent(s, 100, 10.0) for s in range(0, 120, 5)]
    assert values == sorted(values) and anneal_exponent(10, 100, 10.0) > 0.5  # sharp early (slope 10)
    sampler = ProposalSampler(BOX, ProposalConfig(anneal_steps=100, net_log2_table_size=10))
    assert sampler.anneal == 1.0  # a loaded model renders with sharp proposals
    assert sampler.update(0, None) and sampler.anneal == 0.0
    assert not sampler.update(0, None)
    sampler.update(500, None)
    assert sampler.anneal == 1.0


def test_occupied_is_all_space_with_a_contraction():
    points = torch.tensor([[0.0, 0, 0], [100.0, -5e4, 3.0]])
    assert ProposalSampler(BOX, ProposalConfig(net_log2_table_size=10), "linf").occupied(points).all()
    assert ProposalSampler(BOX, ProposalConfig(net_log2_table_size=10), "none").occupied(points).tolist() == [True, False]


def test_proposal_config_is_checked():
    with pytest.raises(ValueError, match="proposal: need 0 <= near < far"):
        build_config(ModelSpec, {"sampler": "proposal", "proposal": {"near": 2.0, "far": 1.0}}, "x.yaml")
    with pytest.raises(ValueError, match="net_max_resolution"):
        build_config(ModelSpec, {"proposal": {"n_proposal_samples": [64, 32], "net_max_resolution": []}}, "x")
    with pytest.raises(ValueError, match="contraction: expected one of"):
        build_config(ModelSpec, {"contraction": "l1"}, "x")
    spec = build_config(ModelSpec, {"sampler": "proposal", "contraction": "l2",
                                    "proposal": {"n_proposal_samples": [16], "net_max_resolution": [64]}}, "x")
    assert spec.proposal.n_proposal_samples == (16,)


def test_losses_need_the_render_of_the_last_training_samples():
    sampler = ProposalSampler(BOX, ProposalConfig(n_proposal_samples=(8,), n_samples=4, net_log2_table_size=10))
    field = NGPField(BOX, NGPFieldConfig(n_levels=2, log2_table_size=8))
    field.contraction = "linf"
    rays = _rays(6)
    with torch.no_grad():
        evaluation = render_rays(field, sampler, rays, torch.zeros(3))
    with pytest.raises(ValueError, match="last sample"):
        sampler.losses(evaluation)  # samples drawn without gradients are not kept
    out = render_rays(field, sampler, rays, torch.zeros(3), stratified=True)
    with torch.no_grad():
        render_rays(field, sampler, rays, torch.zeros(3))  # an evaluation render in between changes nothing
    losses = sampler.losses(out)
    assert set(losses) == {"interlevel", "distortion"} and all(v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in sampler.parameters())
    assert field.encoding.table.grad is not None  # the distortion loss reaches the field
    assert StratifiedSampler(BOX).losses(out) == {}


def test_a_model_spec_builds_the_proposal_sampler_and_checkpoints_its_nets():
    config = load_config(TrainConfig, config_path("ngp_unbounded"))
    assert config.sampler == "proposal" and config.contraction == "linf"
    spec = ModelSpec(**{f.name: getattr(config, f.name) for f in dataclasses.fields(ModelSpec)})
    model = RadianceModel(spec, BOX, cascades=4)
    assert isinstance(model.sampler, ProposalSampler) and model.field.contraction == "linf"
    assert all(net.contraction == "linf" for net in model.sampler.nets)
    assert model.field.config.max_resolution == spec.field_options.get("max_resolution", 2048)  # no cascade growth
    ids = {id(p) for p in model.parameters()}
    assert model.sampler.parameters() and all(id(p) in ids for p in model.sampler.parameters())
    assert any(k.startswith("sampler.nets.") for k in model.state_dict())
    out = model.render_rays(_rays(16), torch.zeros(3), stratified=True)
    assert out.rgb.shape == (16, 3) and out.n_samples == 16 * spec.proposal.n_samples
    assert torch.isfinite(sum(model.sampler.losses(out).values()))


# -- learning ------------------------------------------------------------------------------------
class _Spheres(RadianceField):
    """A fixed scene: a dense ball of radius 0.4 at the origin, and a sky beyond radius 6 (farther,
    a step in density is finer than a cell of the small proposal grids over the contracted box)."""

    def density(self, positions, cond=None):
        r = positions.norm(dim=-1)
        return 40.0 * (r < 0.4).float() + 5.0 * (r > 6.0).float()

    def forward(self, positions, directions, cond=None):
        return FieldOutput(self.density(positions), torch.full_like(positions, 0.5))


def _bounds(field, sampler, rays):
    """The interlevel loss of ``sampler``'s final samples of ``rays`` under its own proposals and
    under those of fresh (untrained) proposal nets, and the render."""
    sampler.update(10**6)
    out = render_rays(field, sampler, rays, torch.zeros(3))
    fresh = ProposalSampler(BOX, sampler.config, sampler.contraction)
    fresh.update(10**6)
    fresh.sample(rays)
    edges, weights = sampler.last.edges, out.weights.view(len(rays), sampler.config.n_samples)
    return (float(interlevel_loss(edges, weights, sampler.last.levels)),
            float(interlevel_loss(edges, weights, fresh.last.levels)), out)


def test_proposal_nets_learn_to_bound_a_fixed_scene():
    """Trained on the interlevel loss alone, the proposal nets bound the scene's weights and the
    final samples gather at the surfaces."""
    torch.manual_seed(0)
    cfg = ProposalConfig(near=0.05, far=200.0, n_proposal_samples=(48, 24), n_samples=16, net_levels=4,
                         net_log2_table_size=12, net_max_resolution=(64, 128), anneal_steps=50, distortion_weight=0.0)
    sampler, field = ProposalSampler(BOX, cfg), _Spheres(BOX)
    opt = torch.optim.Adam(sampler.parameters(), lr=2e-2, eps=1e-15)
    eval_rays = Rays(torch.tensor([[0.0, 0.0, 1.5]]).expand(64, 3), _directions(64, 5))
    losses = []
    for step in range(200):
        sampler.update(step)
        out = render_rays(field, sampler, _rays(128, seed=step, radius=0.8), torch.zeros(3), stratified=True)
        loss = sampler.losses(out)["interlevel"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-20:]) < 0.5 * sum(losses[:20]), (sum(losses[:20]), sum(losses[-20:]))
    trained, fresh, out = _bounds(field, sampler, eval_rays)
    assert trained < fresh / 3, (trained, fresh)
    mids = ((out.samples.t_starts + out.samples.t_ends) / 2).view(64, 16)
    hit = torch.tensor([0.0, 0.0, -1.0]) @ eval_rays.directions.T > 0.95  # rays towards the ball's centre
    assert hit.any()
    near_surface = ((mids[hit] > 0.9) & (mids[hit] < 1.3)).float().mean()  # the ball's front is at t = 1.1
    assert float(near_surface) > 0.5, float(near_surface)


def _unbounded_scene(n, g):
    """Rays from a sphere of radius 1.5 looking inwards at a striped ball (radius 0.4) inside a
    checkered sky sphere of radius 50: colours ``[n, 3]``."""
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 1.5
    d = torch.nn.functional.normalize(-o / 1.5 + 0.8 * torch.randn(n, 3, generator=g), dim=-1)
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 0.4**2)
    t_ball = -b - disc.clamp(min=0).sqrt()
    hit = (disc > 0) & (t_ball > 0)
    sky = o + d * (-b + (b * b - ((o * o).sum(-1) - 50.0**2)).sqrt())[:, None]
    theta, phi = torch.atan2(sky[:, 1], sky[:, 0]), torch.asin((sky[:, 2] / 50).clamp(-1, 1))
    check = (torch.floor(theta * 3 / math.pi) + torch.floor(phi * 3 / math.pi)) % 2
    rgb = torch.stack([0.2 + 0.6 * check, 0.5 + 0.3 * torch.sin(2 * theta), 0.8 - 0.6 * check], -1)
    stripes = (torch.floor((o + d * t_ball[:, None])[:, 2] * 8) % 2)[:, None]
    ball = torch.tensor([0.9, 0.2, 0.1]) * stripes + torch.tensor([0.1, 0.8, 0.3]) * (1 - stripes)
    return Rays(o, d), torch.where(hit[:, None], ball, rgb)


def test_a_field_with_proposal_sampling_learns_an_unbounded_scene():
    torch.manual_seed(0)
    spec = ModelSpec(field="ngp", field_options={"n_levels": 8, "log2_table_size": 14, "max_resolution": 256,
                                                 "hidden": 32, "implementation": "nerfgen"},
                     sampler="proposal", contraction="linf",
                     proposal=ProposalConfig(near=0.05, far=200.0, n_proposal_samples=(48, 24), n_samples=16,
                                             net_levels=4, net_log2_table_size=12, net_max_resolution=(64, 128),
                                             anneal_steps=100, net_implementation="nerfgen"))
    model = RadianceModel(spec, BOX)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2, eps=1e-15)
    g = torch.Generator().manual_seed(1)
    mses = []
    for step in range(300):
        model.sampler.update(step)
        rays, target = _unbounded_scene(256, g)
        out = model.render_rays(rays, torch.zeros(3), stratified=True)
        mse = ((out.rgb - target) ** 2).mean()
        opt.zero_grad()
        (mse + sum(model.sampler.losses(out).values())).backward()
        opt.step()
        mses.append(float(mse.detach()))
    first, last = sum(mses[:5]) / 5, sum(mses[-20:]) / 20
    assert last < 0.35 * first, (first, last)
    # the trained proposal nets bound this field far better than fresh ones do
    rays, _ = _unbounded_scene(256, torch.Generator().manual_seed(99))
    trained, fresh, _ = _bounds(model.field, model.sampler, rays)
    assert trained < fresh / 3, (trained, fresh)


def test_docstring_examples_run():
    import doctest

    from nerfgen.render import contraction, losses, proposal

    for module in (contraction, losses, proposal):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
