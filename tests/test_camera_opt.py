"""Per-camera learned corrections. Pose refinement: exponential maps against the matrix
exponential, an exact identity at zero, recovery of perturbed poses from the reprojections of known
points. Per-image appearance embeddings of the ngp field: off is the plain field bit for bit, on
changes colour but not density, novel views use the mean embedding."""

from __future__ import annotations

import pytest
import torch

from nerfgen.cameras import Cameras, orbit_cameras, pixel_rays, project
from nerfgen.fields import Conditioning, NGPField, NGPFieldConfig
from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.encodings import HashEncoding, SHEncoding, mlp
from nerfgen.reconstruct.camera_opt import (
    CameraOptConfig,
    CameraOptimizer,
    camera_optimizer,
    compose,
    se3_exp,
    skew,
    so3_exp,
    so3xr3_exp,
)
from nerfgen.render import StratifiedConfig, StratifiedSampler, render_rays

# Angles on both sides of the series / closed-form switch (0.5 rad), down to where float64 underflows nothing.
ANGLES = [0.0, 1e-9, 1e-4, 0.1, 0.4999, 0.5001, 1.0, 2.5, 3.1]


def twists(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(len(ANGLES), 3, generator=g, dtype=dtype), dim=-1)
    w = axis * torch.tensor(ANGLES, dtype=dtype)[:, None]
    v = torch.randn(len(ANGLES), 3, generator=g, dtype=dtype)
    return torch.cat([v, w], -1)  # [k, 6]


def reference_se3(xi: torch.Tensor) -> torch.Tensor:
    """``[k, 3, 4]`` from ``torch.linalg.matrix_exp`` of the 4x4 twist matrices."""
    m = torch.zeros(xi.shape[0], 4, 4, dtype=xi.dtype)
    m[:, :3, :3] = skew(xi[:, 3:])
    m[:, :3, 3] = xi[:, :3]
    return torch.linalg.matrix_exp(m)[:, :3]


def test_skew_is_the_cross_product():
    g = torch.Generator().manual_seed(1)
    w, u = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close((skew(w) @ u[..., None])[..., 0], torch.linalg.cross(w, u))


def test_exponentials_match_the_matrix_exponential_in_float64():
    xi = twists()
    torch.testing.assert_close(se3_exp(xi), reference_se3(xi), atol=1e-13, rtol=1e-13)
    rot = torch.linalg.matrix_exp(skew(xi[:, 3:]))
    torch.testing.assert_close(so3_exp(xi[:, 3:]), rot, atol=1e-13, rtol=1e-13)
    torch.testing.assert_close(so3xr3_exp(xi), torch.cat([rot, xi[:, :3, None]], -1), atol=1e-13, rtol=1e-13)


def test_float32_is_accurate_and_orthonormal_near_zero():
    xi64 = twists()
    xi32 = xi64.float()
    torch.testing.assert_close(se3_exp(xi32).double(), reference_se3(xi32.double()), atol=2e-6, rtol=2e-6)
    rot = so3_exp(xi32[:, 3:])
    eye = torch.eye(3).expand_as(rot)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye, atol=1e-6, rtol=0)
    assert torch.isfinite(rot).all()


@pytest.mark.parametrize("fn", [so3_exp, se3_exp, so3xr3_exp], ids=["so3", "se3", "so3xr3"])
def test_exponentials_pass_gradcheck(fn):
    xi = twists()[1:]  # gradcheck's finite differences straddle 0 badly at exactly 0; covered below
    arg = xi[:, 3:] if fn is so3_exp else xi
    for row in arg:
        assert torch.autograd.gradcheck(fn, (row.clone().requires_grad_(),), eps=1e-6, atol=1e-7)


def test_gradient_at_zero_is_the_generators():
    """d exp([w]_x) / d w_k at w = 0 is [e_k]_x: finite, exact, in float32 too."""
    for dtype in (torch.float32, torch.float64):
        jac = torch.autograd.functional.jacobian(so3_exp, torch.zeros(3, dtype=dtype))  # [3, 3, 3]
        for k in range(3):
            torch.testing.assert_close(jac[..., k], skew(torch.eye(3, dtype=dtype)[k]), atol=1e-7, rtol=0)
        jac = torch.autograd.functional.jacobian(se3_exp, torch.zeros(6, dtype=dtype))  # [3, 4, 6]
        torch.testing.assert_close(jac[:, 3, :3], torch.eye(3, dtype=dtype), atol=1e-7, rtol=0)


def cameras(n: int = 6) -> Cameras:
    return orbit_cameras(n, radius=4.0, elevation_deg=20.0, fov_x_deg=50.0, width=64, height=48)


@pytest.mark.parametrize("mode", ["SO3xR3", "SE3"])
def test_zero_initialisation_is_exactly_the_identity(mode):
    cams = cameras()
    opt = CameraOptimizer(len(cams), mode)
    assert opt.pose_adjustment.shape == (len(cams), 6) and not opt.pose_adjustment.any()
    idx = torch.tensor([0, 3, 3, 5])
    assert torch.equal(opt.apply(cams.c2w[idx], idx), cams.c2w[idx])
    px, py = torch.tensor([0.5, 10.2, 40.0, 63.5]), torch.tensor([0.5, 20.0, 7.7, 47.5])
    a, b = opt.rays(cams, idx, px, py), pixel_rays(cams, idx, px, py)
    assert torch.equal(a.origins, b.origins) and torch.equal(a.directions, b.directions)


def test_off_has_no_parameters_and_changes_nothing():
    cams = cameras()
    opt = CameraOptimizer(len(cams), "off")
    assert list(opt.parameters()) == [] and not opt.enabled
    assert opt.corrected(cams) is cams
    with pytest.raises(ValueError, match="off"):
        camera_optimizer(opt, CameraOptConfig())
    with pytest.raises(ValueError, match="mode must be one of"):
        CameraOptimizer(3, "SE2")


def test_correction_composes_in_camera_space():
    """A pure translation along camera -z moves the camera forward along its viewing axis."""
    cams = cameras()
    opt = CameraOptimizer(len(cams), "SO3xR3")
    with torch.no_grad():
        opt.pose_adjustment[2, 2] = -0.5
    out = opt.corrected(cams).c2w
    forward = -cams.c2w[2, :, 2]
    torch.testing.assert_close(out[2, :, 3], cams.c2w[2, :, 3] + 0.5 * forward)
    torch.testing.assert_close(out[2, :, :3], cams.c2w[2, :, :3])
    assert torch.equal(out[1], cams.c2w[1])


def rotation_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n]`` angle of ``a^T b`` for rotations ``[n, 3, 3]``."""
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1, 1))


def perturbed_problem() -> tuple[Cameras, Cameras, torch.Tensor, list[torch.Tensor]]:
    """Six true cameras, the same with cameras 0, 2 and 4 perturbed (about 0.05 rad and 0.05 units),
    200 known points and their pixels in the true cameras ``[2, 200]`` each."""
    g = torch.Generator().manual_seed(3)
    true = cameras()
    points = (torch.rand(200, 3, generator=g) - 0.5) * 1.5  # around the orbit's centre
    observed = [torch.stack(project(true, i, points)[:2]) for i in range(len(true))]
    noise = torch.zeros(len(true), 6)
    noise[[0, 2, 4]] = torch.randn(3, 6, generator=g) * torch.tensor([0.05] * 3 + [0.04] * 3)
    start = Cameras(compose(true.c2w, so3xr3_exp(noise)), true.fx, true.fy, true.cx, true.cy, true.width,
                    true.height)
    return true, start, points, observed


def reprojection_loss(opt: CameraOptimizer, start: Cameras, points: torch.Tensor, observed: list) -> torch.Tensor:
    fixed = opt.corrected(start)
    return sum(((torch.stack(project(fixed, i, points)[:2]) - observed[i]) ** 2).mean() for i in range(len(start)))


@pytest.mark.parametrize("mode", ["SO3xR3", "SE3"])
def test_recovers_perturbed_poses_from_reprojections(mode):
    """Minimise the reprojection error of known points, seen at their true pixels, over the
    corrections: the rotation and translation errors fall by far more than 10x."""
    true, start, points, observed = perturbed_problem()
    rot0 = rotation_angle(start.c2w[:, :, :3], true.c2w[:, :, :3])
    trans0 = (start.c2w[:, :, 3] - true.c2w[:, :, 3]).norm(dim=-1)
    assert rot0[[0, 2, 4]].min() > 0.02 and trans0[[0, 2, 4]].min() > 0.02

    opt = CameraOptimizer(len(true), mode)
    lbfgs = torch.optim.LBFGS(opt.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        lbfgs.zero_grad()
        loss = reprojection_loss(opt, start, points, observed)
        loss.backward()
        return loss

    for _ in range(2):
        lbfgs.step(closure)
    with torch.no_grad():
        fixed = opt.corrected(start).c2w
    rot1 = rotation_angle(fixed[:, :, :3], true.c2w[:, :, :3])
    trans1 = (fixed[:, :, 3] - true.c2w[:, :, 3]).norm(dim=-1)
    assert rot1.max() < rot0.max() / 100, (rot0, rot1)
    assert trans1.max() < trans0.max() / 100, (trans0, trans1)
    assert opt.pose_adjustment[[1, 3, 5]].abs().max() < 1e-3  # correct cameras stay (nearly) put


def test_the_training_optimiser_descends():
    """:func:`camera_optimizer`'s Adam (the engine's kind of optimiser) lowers the reprojection
    error of the perturbed cameras by 10x in 150 steps, and applies the configured weight decay."""
    _, start, points, observed = perturbed_problem()
    opt = CameraOptimizer(len(start), "SO3xR3")
    config = CameraOptConfig(mode="SO3xR3", lr=1e-2, weight_decay=0.0)
    adam, schedule = camera_optimizer(opt, config)
    assert adam.param_groups[0]["lr"] == config.lr and schedule.decay == config.lr_decay
    first = float(reprojection_loss(opt, start, points, observed).detach())
    for _ in range(150):
        adam.zero_grad()
        reprojection_loss(opt, start, points, observed).backward()
        adam.step()
    assert float(reprojection_loss(opt, start, points, observed).detach()) < first / 10
    decayed, _ = camera_optimizer(opt, CameraOptConfig(weight_decay=0.5))
    assert decayed.param_groups[0]["weight_decay"] == 0.5


# -- per-image appearance embeddings (NGPField.appearance_dim) --------------------------------------

BOX = torch.tensor([-1.0, -1, -1, 1, 1, 1])
SMALL = {"n_levels": 4, "log2_table_size": 10, "hidden": 16, "max_resolution": 64}


class PlainNGP(torch.nn.Module):
    """instant-ngp's field as NGPField was before appearance embeddings, built from the same parts
    in the same order: the reference the embedding-off field must match bit for bit."""

    def __init__(self, cfg: NGPFieldConfig) -> None:
        super().__init__()
        self.register_buffer("aabb", BOX.clone())
        self.encoding = HashEncoding(cfg.n_levels, cfg.n_features, cfg.log2_table_size, cfg.base_resolution,
                                     cfg.max_resolution, cfg.implementation)
        self.density_net = mlp(self.encoding.out_dim, cfg.hidden, 1, 1 + cfg.geo_features)
        self.direction_encoding = SHEncoding()
        self.color_net = mlp(SHEncoding.out_dim + cfg.geo_features, cfg.hidden, cfg.color_layers, 3)

    def forward(self, positions, directions):
        unit = (positions - BOX[:3]) / (BOX[3:] - BOX[:3])
        inside = ((unit >= 0) & (unit <= 1)).all(-1)
        h = self.density_net(self.encoding(unit.clamp(0, 1)))
        sigma = trunc_exp(h[:, 0] - 1.0) * inside
        rgb = torch.sigmoid(self.color_net(torch.cat([self.direction_encoding(directions), h[:, 1:]], -1)))
        return sigma, rgb


def points(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    x = torch.rand(n, 3, generator=g) * 2.2 - 1.1  # some outside the box
    return x, torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)


def test_appearance_off_is_the_plain_field_bit_for_bit():
    x, d = points()
    torch.manual_seed(11)
    reference = PlainNGP(NGPFieldConfig(**SMALL))
    torch.manual_seed(11)
    field = NGPField(BOX, NGPFieldConfig(**SMALL, appearance_dim=0, appearance_images=5, fused_mlp=False))
    old = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in field.state_dict().items()} == old  # old checkpoints load
    sigma, rgb = reference(x, d)
    out = field(x, d)
    assert torch.equal(out.sigma, sigma) and torch.equal(out.rgb, rgb)
    field.config.fused_mlp = True  # the fused kernel: the same field to float rounding
    fused = field(x, d)
    torch.testing.assert_close(fused.sigma, sigma, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused.rgb, rgb, rtol=1e-5, atol=1e-6)
    field.load_state_dict(reference.state_dict(), strict=True)
    assert field.accepts == frozenset({"transform"}) and field.appearance_protocol == "appearance: no embedding"
    with pytest.raises(ValueError, match="takes no latent"):
        field(x, d, Conditioning(latent=torch.zeros(64, dtype=torch.long)))


def test_appearance_embedding_changes_colour_not_density():
    x, d = points()
    torch.manual_seed(11)
    plain = NGPField(BOX, NGPFieldConfig(**SMALL))
    torch.manual_seed(11)
    field = NGPField(BOX, NGPFieldConfig(**SMALL, appearance_dim=8, appearance_images=3))
    assert field.appearance.weight.shape == (3, 8) and "latent" in field.accepts
    assert torch.equal(field.density(x), plain.density(x))  # the geometry draws the same initial values
    a = field(x, d, Conditioning(latent=torch.zeros(1, dtype=torch.long)))
    b = field(x, d, Conditioning(latent=torch.ones(1, dtype=torch.long)))
    assert torch.equal(a.sigma, b.sigma)
    assert (a.rgb - b.rgb).abs().max() > 1e-3
    per_point = field(x, d, Conditioning(latent=torch.arange(64) % 2))
    torch.testing.assert_close(per_point.rgb[0::2], a.rgb[0::2])
    torch.testing.assert_close(per_point.rgb[1::2], b.rgb[1::2])
    with pytest.raises(ValueError, match="out of range"):
        field(x, d, Conditioning(latent=torch.full((1,), 3, dtype=torch.long)))
    with pytest.raises(ValueError, match="appearance codes"):
        field(x, d, Conditioning(latent=torch.zeros(1, 5)))


def test_views_without_an_image_use_the_mean_training_embedding():
    x, d = points()
    field = NGPField(BOX, NGPFieldConfig(**SMALL, appearance_dim=4, appearance_images=6))
    mean = field.appearance.weight.mean(0, keepdim=True)
    novel = field(x, d)
    torch.testing.assert_close(novel.rgb, field(x, d, Conditioning(latent=mean)).rgb, rtol=0, atol=0)
    assert (novel.rgb - field(x, d, Conditioning(latent=torch.tensor([2]))).rgb).abs().max() > 1e-4
    assert field.appearance_protocol == "appearance: mean training embedding (of 6 images)"
    with pytest.raises(ValueError, match="appearance_images"):
        NGPField(BOX, NGPFieldConfig(**SMALL, appearance_dim=4))


def test_rendering_trains_only_the_embeddings_of_the_images_in_the_batch():
    """Per-ray image indices follow the rays to their samples (``Conditioning.take``)."""
    field = NGPField(BOX, NGPFieldConfig(**SMALL, appearance_dim=4, appearance_images=5))
    sampler = StratifiedSampler(BOX, StratifiedConfig(n_samples=16))
    cams = cameras(5)
    cam = torch.tensor([1, 3, 3, 1])
    rays = pixel_rays(cams, cam, torch.full((4,), 32.0), torch.full((4,), 24.0))
    out = render_rays(field, sampler, rays, torch.zeros(3), Conditioning(latent=cam))
    out.rgb.sum().backward()
    used = field.appearance.weight.grad.abs().sum(-1)
    assert used[[1, 3]].min() > 0 and used[[0, 2, 4]].max() == 0
