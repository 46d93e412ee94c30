"""MVSNeRF in nerfgen against the paper's equations: the published checkpoint loads with
``weights_only=True``, and nerfgen's network (cost volume by unprojecting reference cells,
encoding volume, renderer, compositing through nerfgen's renderer) reproduces a reference written
here from the equations (plane-induced homographies, functional convolutions with the checkpoint's
tensors, the MLP, :math:`w_j = (1 - e^{-\\alpha_j}) \\prod_{k<j} e^{-\\alpha_k}`) on a small fixed
input. Bad checkpoints are one clear error naming the file."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nerfgen.cameras import Cameras, Rays, look_at
from nerfgen.fields import Conditioning
from nerfgen.generalize.mvsnerf import MVSNeRF, MVSNeRFConfig, load_mvsnerf_checkpoint
from nerfgen.generalize.sources import SourceViews
from nerfgen.render import render_rays

MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


@pytest.fixture(scope="module")
def checkpoint(shared_data):
    path = shared_data / "mvsnerf" / "mvsnerf-v0.tar"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def weights(checkpoint):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return {**ckpt["network_mvs_state_dict"], **ckpt["network_fn_state_dict"]}


def small_scene():
    """Three 64 x 32 views of a smooth pattern, forward-facing, a metre apart (fixed)."""
    g = torch.Generator().manual_seed(3)
    eyes = [(0.0, 0.0, 4.0), (0.5, 0.1, 4.1), (-0.4, 0.3, 3.9)]
    c2w = torch.stack([look_at(e, (0.1 * i, 0.0, 0.0), up=(0.0, 1.0, 0.0)) for i, e in enumerate(eyes)])
    n = len(eyes)
    cams = Cameras(c2w, torch.full((n,), 60.0), torch.full((n,), 58.0), torch.full((n,), 32.0), torch.full((n,), 16.0),
                   64, 32)
    base = torch.rand(n, 3, 8, 16, generator=g)
    images = F.interpolate(base, size=(32, 64), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    return SourceViews(images.contiguous(), cams, ["a", "b", "c"])


# -- the reference, from the paper's equations ---------------------------------------------------
def bn_act(x, w, prefix):
    dims = [0] + list(range(2, x.dim()))
    mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - mean) / torch.sqrt(var + 1e-5) * w[prefix + "weight"].view(shape) + w[prefix + "bias"].view(shape)
    return F.leaky_relu(y, 0.01)


def features_2d(w, x):
    layers = [("conv0", [(1, 1), (1, 1)]), ("conv1", [(2, 2), (1, 1), (1, 1)]), ("conv2", [(2, 2), (1, 1), (1, 1)])]
    for name, specs in layers:
        for i, (stride, pad) in enumerate(specs):
            x = bn_act(F.conv2d(x, w[f"feature.{name}.{i}.conv.weight"], stride=stride, padding=pad), w,
                       f"feature.{name}.{i}.bn.")
    return F.conv2d(x, w["feature.toplayer.weight"], w["feature.toplayer.bias"])


def regularise(w, x):
    def c(name, x, stride=1):
        return bn_act(F.conv3d(x, w[f"cost_reg_2.{name}.conv.weight"], stride=stride, padding=1), w,
                      f"cost_reg_2.{name}.bn.")

    def up(name, x):
        y = F.conv_transpose3d(x, w[f"cost_reg_2.{name}.0.weight"], stride=2, padding=1, output_padding=1)
        return bn_act(y, w, f"cost_reg_2.{name}.1.")

    l0 = c("conv0", x)
    l1 = c("conv2", c("conv1", l0, 2))
    l2 = c("conv4", c("conv3", l1, 2))
    y = l2 + up("conv7", c("conv6", c("conv5", l2, 2)))
    return l0 + up("conv11", l1 + up("conv9", y))


def intrinsics(cams, i, scale):
    return torch.tensor([[cams.fx[i] / scale, 0, (cams.cx[i] - 0.5) / scale], [0, cams.fy[i] / scale,
                         (cams.cy[i] - 0.5) / scale], [0, 0, 1.0]])


def w2c_cv(cams, i):
    c2w = cams.c2w[i].clone()
    c2w[:, 1:3] *= -1  # OpenGL -> OpenCV camera axes
    r = c2w[:, :3].T
    return r, -r @ c2w[:, 3]


def homography(cams, i, depth, scale):
    """The plane-induced homography of the paper's eq. 1, reference plane z = depth (fronto-parallel):
    ``H_i(z) = K_i (R_i R_1^T + (t_i - R_i R_1^T t_1) n^T / z) K_1^{-1}``, ``n = (0, 0, 1)``."""
    r1, t1 = w2c_cv(cams, 0)
    ri, ti = w2c_cv(cams, i)
    rel_r = ri @ r1.T
    rel_t = ti - rel_r @ t1
    n = torch.tensor([0.0, 0.0, 1.0])
    return intrinsics(cams, i, scale) @ (rel_r + rel_t[:, None] * n[None] / depth) @ torch.linalg.inv(
        intrinsics(cams, 0, scale))


def reference_volume(w, sources, config, near, far):
    imgs = sources.images.permute(0, 3, 1, 2)
    normed = (imgs - MEAN[:, None, None]) / STD[:, None, None]
    feats = features_2d(w, normed)
    v, c, h, wd = feats.shape
    small = F.interpolate(normed, size=(h, wd), mode="bilinear", align_corners=False)
    pad, d = config.pad, config.depth_planes
    depths = torch.linspace(near, far, d)
    vol = torch.zeros(1, 9 + c, d, h + 2 * pad, wd + 2 * pad)
    vol[0, :3, :, pad:pad + h, pad:pad + wd] = small[0][:, None]
    ys, xs = torch.meshgrid(torch.arange(h + 2 * pad) - float(pad), torch.arange(wd + 2 * pad) - float(pad),
                            indexing="ij")
    ref_pix = torch.stack([xs, ys, torch.ones_like(xs)], -1).reshape(-1, 3)
    for j, z in enumerate(depths):
        sums, squares, count = F.pad(feats[0], (pad,) * 4).clone(), F.pad(feats[0], (pad,) * 4) ** 2, 1.0
        for i in (1, 2):
            q = ref_pix @ homography(sources.cameras, i, float(z), 4.0).T
            xy = q[:, :2] / q[:, 2:]
            grid = torch.stack([xy[:, 0] / ((wd - 1) / 2) - 1, xy[:, 1] / ((h - 1) / 2) - 1], -1).view(1, 1, -1, 2)
            both = F.grid_sample(torch.cat([feats[i:i + 1], small[i:i + 1]], 1), grid, align_corners=True)
            both = both.view(c + 3, h + 2 * pad, wd + 2 * pad)
            vol[0, 3 * i:3 * i + 3, j] = both[c:]
            sums, squares = sums + both[:c], squares + both[:c] ** 2
            count = count + (grid.abs() < 1).all(-1).view(h + 2 * pad, wd + 2 * pad).float()
        vol[0, 9:, j] = squares / count - (sums / count) ** 2
    return regularise(w, vol)


def reference_colour(w, sources, volume, rays, config, near, far):
    """Uniform samples from near to far on each ray, the renderer's MLP, and compositing."""
    n = config.n_samples
    t = near + (torch.arange(n) + 0.5) * (far - near) / n
    pts = rays.origins[:, None] + rays.directions[:, None] * t[None, :, None]  # [R, n, 3]
    cams, pad = sources.cameras, config.pad
    width, height = cams.width, cams.height

    def pixel(i, p):
        r, tt = w2c_cv(cams, i)
        local = p @ r.T + tt
        q = local @ intrinsics(cams, i, 1.0).T
        return q[..., :2] / q[..., 2:], local[..., 2]

    xy, z = pixel(0, pts)
    wf, hf = width / 4, height / 4
    nu = torch.stack([(xy[..., 0] / (width - 1) * wf + pad) / (wf + 2 * pad),
                      (xy[..., 1] / (height - 1) * hf + pad) / (hf + 2 * pad), (z - near) / (far - near)], -1)
    f = F.grid_sample(volume, (nu * 2 - 1).view(1, 1, 1, -1, 3), align_corners=True).view(8, -1).T
    feats = [f]
    for i in range(3):
        uv = pixel(i, pts)[0].reshape(-1, 2)
        grid = torch.stack([uv[:, 0] / (width - 1), uv[:, 1] / (height - 1)], -1) * 2 - 1
        img = sources.images[i].permute(2, 0, 1)[None]
        feats += [F.grid_sample(img, grid.view(1, 1, -1, 2), padding_mode="border", align_corners=True).view(3, -1).T,
                  ((grid > -1) & (grid < 1)).all(-1, keepdim=True).float()]
    feats = torch.cat(feats, -1)
    x = nu.reshape(-1, 3)
    freqs = 2.0 ** torch.arange(10.0)
    gamma = torch.cat([x, torch.sin((x[:, None] * freqs[:, None]).reshape(-1, 30)),
                       torch.cos((x[:, None] * freqs[:, None]).reshape(-1, 30))], -1)
    bias = feats @ w["nerf.pts_bias.weight"].T + w["nerf.pts_bias.bias"]
    h = gamma
    for k in range(6):
        h = torch.relu((h @ w[f"nerf.pts_linears.{k}.weight"].T + w[f"nerf.pts_linears.{k}.bias"]) * bias)
        if k == 4:
            h = torch.cat([gamma, h], -1)
    alpha = torch.relu(h @ w["nerf.alpha_linear.weight"].T + w["nerf.alpha_linear.bias"])[:, 0].view(-1, n)
    r0, _ = w2c_cv(cams, 0)
    d = (rays.directions @ r0.T)[:, None].expand(-1, n, -1).reshape(-1, 3)
    feature = h @ w["nerf.feature_linear.weight"].T + w["nerf.feature_linear.bias"]
    hv = torch.relu(torch.cat([feature, d], -1) @ w["nerf.views_linears.0.weight"].T + w["nerf.views_linears.0.bias"])
    rgb = torch.sigmoid(hv @ w["nerf.rgb_linear.weight"].T + w["nerf.rgb_linear.bias"]).view(-1, n, 3)
    opacity = 1 - torch.exp(-alpha)
    transmittance = torch.cumprod(torch.cat([torch.ones(len(alpha), 1), 1 - opacity[:, :-1]], -1), -1)
    return ((opacity * transmittance)[..., None] * rgb).sum(1)


def test_nerfgens_mvsnerf_matches_the_papers_equations(checkpoint, weights):
    torch.manual_seed(0)
    near, far = 2.5, 5.5
    config = MVSNeRFConfig(n_samples=16, depth_planes=24, pad=8, near=near, far=far)  # two chunks of planes
    model = MVSNeRF(config)
    load_mvsnerf_checkpoint(model, checkpoint)
    model.eval()
    sources = small_scene()
    with torch.no_grad():
        features = model.encode(sources)
        expected = reference_volume(weights, sources, config, near, far)
        assert features.extra["volume"].shape == expected.shape == (1, 8, 24, 24, 32)
        assert torch.allclose(features.extra["volume"], expected, atol=2e-4, rtol=1e-4)

        origins = sources.cameras.c2w[0, :, 3].expand(12, 3) + torch.randn(12, 3) * 0.05
        targets = torch.tensor([0.0, 0.0, 0.0]) + torch.randn(12, 3) * torch.tensor([0.8, 0.4, 0.3])
        rays = Rays(origins, F.normalize(targets - origins, dim=-1))
        out = render_rays(model.field, model.sampler_for(features), rays, torch.zeros(3), Conditioning(views=features))
        want = reference_colour(weights, sources, expected, rays, config, near, far)
    assert out.rgb.shape == (12, 3) and float(out.opacity.max()) > 0.05  # the rays see something
    assert torch.allclose(out.rgb, want, atol=5e-4), (out.rgb - want).abs().max()


def test_the_checkpoint_loader_names_the_file_and_what_does_not_match(checkpoint, weights, tmp_path):
    model = MVSNeRF(MVSNeRFConfig())
    load_mvsnerf_checkpoint(model, checkpoint)  # every tensor matched by name and shape
    assert torch.equal(model.field.nerf.alpha_linear.weight, weights["nerf.alpha_linear.weight"])
    assert torch.equal(model.cost_reg_2.conv7[1].running_var, weights["cost_reg_2.conv7.1.running_var"])
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)

    def broken(name, change):
        bad = {k: dict(v) if isinstance(v, dict) else v for k, v in ckpt.items()}
        change(bad)
        path = tmp_path / name
        torch.save(bad, path)
        return path

    cases = [
        (broken("shape.tar", lambda c: c["network_fn_state_dict"].update(
            {"nerf.pts_bias.weight": torch.zeros(128, 11)})), r"mis-shaped \['field.nerf.pts_bias.weight \[128, 11\]"),
        (broken("missing.tar", lambda c: c["network_mvs_state_dict"].pop("cost_reg_2.conv0.conv.weight")),
         r"missing \['cost_reg_2.conv0.conv.weight'\]"),
        (broken("extra.tar", lambda c: c["network_fn_state_dict"].update({"nerf.rgb_linear2.weight": torch.zeros(1)})),
         r"unexpected \['field.nerf.rgb_linear2.weight'\]"),
        (broken("part.tar", lambda c: c.pop("network_fn_state_dict")), "not an MVSNeRF checkpoint"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=f"{path}: .*{message}" if "MVSNeRF" not in message else message) as info:
            load_mvsnerf_checkpoint(MVSNeRF(MVSNeRFConfig()), path)
        assert str(path) in str(info.value)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{garbage}: not a checkpoint torch loads"):
        load_mvsnerf_checkpoint(model, garbage)
    with pytest.raises(FileNotFoundError, match="nowhere.tar: MVSNeRF checkpoint not found"):
        load_mvsnerf_checkpoint(model, tmp_path / "nowhere.tar")
