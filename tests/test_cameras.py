"""Tests for nerfgen.cameras: distortion, rays, scaling, orbits."""

from __future__ import annotations

import math

import pytest
import torch

from nerfgen.cameras import (
    Cameras,
    Rays,
    distort,
    image_rays,
    look_at,
    orbit_cameras,
    pixel_rays,
    undistort,
)

# Fox (instant-ngp) intrinsics: a real, mildly distorted phone camera.
FOX = dict(fx=1375.52, fy=1374.49, cx=554.558, cy=965.268, w=1080, h=1920)
FOX_DIST = (0.0578421, -0.0805099, -0.000980296, 0.00015575)


def random_c2w(n: int, seed: int = 0) -> torch.Tensor:
    """Random rigid poses. [n, 3, 4]"""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.linalg.det(q).sign()[:, None, None]  # proper rotations
    t = torch.randn(n, 3, 1, generator=g, dtype=torch.float64) * 3
    return torch.cat([q, t], dim=-1).float()


def make_cameras(n: int = 3, distortion: tuple[float, ...] | None = None, seed: int = 0) -> Cameras:
    def full(v: float) -> torch.Tensor:
        return torch.full((n,), v, dtype=torch.float32)

    dist = None if distortion is None else torch.tensor(distortion, dtype=torch.float32).expand(n, 4).clone()
    return Cameras(
        c2w=random_c2w(n, seed),
        fx=full(FOX["fx"]),
        fy=full(FOX["fy"]),
        cx=full(FOX["cx"]),
        cy=full(FOX["cy"]),
        width=FOX["w"],
        height=FOX["h"],
        distortion=dist,
    )


def pixel_grid(w: int, h: int, step: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(
        torch.arange(0, h + 1, step, dtype=dtype), torch.arange(0, w + 1, step, dtype=dtype), indexing="ij"
    )
    return xs.reshape(-1), ys.reshape(-1)


def test_undistort_inverts_distort_to_1e5_pixels():
    px, py = pixel_grid(FOX["w"], FOX["h"], 20)  # includes the image corners
    x = (px - FOX["cx"]) / FOX["fx"]
    y = (py - FOX["cy"]) / FOX["fy"]
    params = torch.tensor(FOX_DIST, dtype=torch.float64).expand(len(x), 4)
    xd, yd = distort(x, y, params)
    assert (xd - x).abs().max() * FOX["fx"] > 1.0  # the distortion is not negligible
    xu, yu = undistort(xd, yd, params)
    err_px = torch.maximum((xu - x).abs() * FOX["fx"], (yu - y).abs() * FOX["fy"])
    assert err_px.max() < 1e-5


def test_undistort_float32_and_strong_tangential():
    params = torch.tensor([-0.25, 0.08, 0.01, -0.008]).expand(500, 4)
    g = torch.Generator().manual_seed(1)
    x, y = (torch.rand(2, 500, generator=g) - 0.5) * 0.8
    xu, yu = undistort(*distort(x, y, params), params)
    assert torch.allclose(xu, x, atol=1e-6) and torch.allclose(yu, y, atol=1e-6)


def test_newton_jacobian_matches_autograd():
    from nerfgen.cameras.lenses import _residual_and_jacobian

    params = torch.tensor([0.3, -0.2, 0.05, -0.04], dtype=torch.float64)
    point = torch.tensor([0.4, -0.7], dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    _, _, *jac = _residual_and_jacobian(point[0], point[1], zero, zero, params)
    expected = torch.autograd.functional.jacobian(lambda p: torch.stack(distort(p[0], p[1], params)), point)
    assert torch.allclose(torch.stack(jac).reshape(2, 2), expected)


def test_principal_point_ray_is_minus_z_of_camera():
    cams = make_cameras(4)
    idx = torch.arange(4)
    rays = pixel_rays(cams, idx, cams.cx, cams.cy)
    expected = -cams.c2w[:, :, 2]
    assert torch.allclose(rays.directions, expected, atol=1e-6)
    assert torch.allclose(rays.origins, cams.c2w[:, :, 3])


def test_pixel_edges_match_field_of_view():
    fov_x, fov_y = math.radians(60.0), math.radians(40.0)
    w, h = 64, 48
    cams = orbit_cameras(1, 2.0, 10.0, math.degrees(fov_x), w, h)
    cams.fy[:] = 0.5 * h / math.tan(0.5 * fov_y)
    idx = torch.zeros(4, dtype=torch.long)
    px = torch.tensor([0.0, w, w / 2, w / 2])
    py = torch.tensor([h / 2, h / 2, 0.0, h])
    rays = pixel_rays(cams, idx, px, py)
    axis = -cams.c2w[0, :, 2]
    angles = torch.rad2deg(torch.arccos((rays.directions @ axis).clamp(-1, 1)))
    expected = torch.tensor([30.0, 30.0, 20.0, 20.0])
    assert torch.allclose(angles, expected, atol=1e-3)
    # Left edge points along -x of the camera, top edge along +y (OpenGL: y up, image y down).
    right, up = cams.c2w[0, :, 0], cams.c2w[0, :, 1]
    assert rays.directions[0] @ right < 0 and rays.directions[1] @ right > 0
    assert rays.directions[2] @ up > 0 and rays.directions[3] @ up < 0


def test_rays_are_unit_and_hit_projected_points_with_distortion():
    cams = make_cameras(2, FOX_DIST, seed=3)
    g = torch.Generator().manual_seed(0)
    n = 200
    cam_idx = torch.randint(0, 2, (n,), generator=g)
    # Points in front of each camera, projected with the forward distortion model.
    x, y = (torch.rand(2, n, generator=g) - 0.5) * torch.tensor([[0.7], [1.3]])
    depth = 1 + 4 * torch.rand(n, generator=g)
    p_cam = torch.stack([x * depth, -y * depth, -depth], dim=-1)  # OpenGL camera space
    c2w = cams.c2w[cam_idx]
    p_world = (c2w[:, :, :3] @ p_cam[..., None])[..., 0] + c2w[:, :, 3]
    xd, yd = distort(x, y, cams.distortion[cam_idx])
    px = xd * cams.fx[cam_idx] + cams.cx[cam_idx]
    py = yd * cams.fy[cam_idx] + cams.cy[cam_idx]
    rays = pixel_rays(cams, cam_idx, px, py)
    assert torch.allclose(rays.directions.norm(dim=-1), torch.ones(n), atol=1e-6)
    to_point = p_world - rays.origins
    off_ray = torch.linalg.cross(rays.directions, to_point).norm(dim=-1) / to_point.norm(dim=-1)
    assert off_ray.max() < 1e-5  # angle (radians) between the ray and the point
    assert ((rays.directions * to_point).sum(-1) > 0).all()


def test_image_rays_row_major_pixel_centres():
    cams = make_cameras(2, FOX_DIST).scaled(60)  # 18 x 32
    rays = image_rays(cams, 1)
    assert len(rays) == cams.width * cams.height
    i, j = 5, 7
    single = pixel_rays(cams, torch.tensor([1]), torch.tensor([j + 0.5]), torch.tensor([i + 0.5]))
    assert torch.allclose(rays.directions[i * cams.width + j], single.directions[0], atol=1e-6)


def test_scaled_keeps_rays_of_same_relative_pixel():
    cams = make_cameras(2, FOX_DIST)
    small = cams.scaled(7.3)
    assert (small.width, small.height) == (round(1080 / 7.3), round(1920 / 7.3))
    sx, sy = small.width / cams.width, small.height / cams.height
    g = torch.Generator().manual_seed(2)
    u = torch.rand(100, generator=g) * cams.width
    v = torch.rand(100, generator=g) * cams.height
    idx = torch.randint(0, 2, (100,), generator=g)
    big_rays = pixel_rays(cams, idx, u, v)
    small_rays = pixel_rays(small, idx, u * sx, v * sy)
    assert torch.allclose(big_rays.directions, small_rays.directions, atol=1e-5)
    assert torch.allclose(big_rays.origins, small_rays.origins)


def test_orbit_cameras_look_at_center():
    center = (0.3, -0.2, 0.5)
    cams = orbit_cameras(12, 4.0, 30.0, 50.0, 40, 30, center=center)
    assert len(cams) == 12 and (cams.width, cams.height) == (40, 30)
    eyes = cams.c2w[:, :, 3]
    c = torch.tensor(center)
    assert torch.allclose((eyes - c).norm(dim=-1), torch.full((12,), 4.0), atol=1e-5)
    assert torch.allclose(eyes[:, 2] - c[2], torch.full((12,), 4.0 * math.sin(math.radians(30))), atol=1e-5)
    rays = pixel_rays(cams, torch.arange(12), cams.cx, cams.cy)
    to_center = torch.nn.functional.normalize(c - rays.origins, dim=-1)
    assert torch.allclose(rays.directions, to_center, atol=1e-5)
    # Camera up is tilted towards world up: the horizon stays level.
    assert (cams.c2w[:, 2, 1] > 0).all() and cams.c2w[:, 2, 0].abs().max() < 1e-6
    rot = cams.c2w[:, :, :3]
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(12, 3, 3), atol=1e-5)


def test_look_at_rejects_degenerate_up():
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 2), (0, 0, 0), (0, 0, 1))


def test_cameras_indexing_and_validation():
    cams = make_cameras(5)
    one = cams[2]
    assert len(one) == 1 and one.c2w.shape == (1, 3, 4)
    assert torch.equal(one.c2w[0], cams.c2w[2])
    assert len(cams[1:4]) == 3
    picked = cams[torch.tensor([4, 0])]
    assert torch.equal(picked.fx, cams.fx[[4, 0]]) and picked.distortion.shape == (2, 4)
    assert torch.count_nonzero(cams.distortion) == 0
    with pytest.raises(ValueError, match=r"c2w must be \[n_cams, 3, 4\]"):
        Cameras(torch.zeros(2, 4, 4), *[torch.ones(2)] * 4, width=4, height=4)
    with pytest.raises(ValueError, match="fy"):
        Cameras(torch.zeros(2, 3, 4), torch.ones(2), torch.ones(3), torch.ones(2), torch.ones(2), 4, 4)


def test_rays_slicing():
    rays = Rays(torch.zeros(10, 3), torch.ones(10, 3))
    assert len(rays[2:5]) == 3 and len(rays[3]) == 1 and len(rays[torch.tensor([1, 2])]) == 2
