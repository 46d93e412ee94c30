"""Density normals: analytic sphere, through the renderer, differentiable."""

from __future__ import annotations

import torch

from nerfgen.cameras import Rays
from nerfgen.fields import FieldOutput, RadianceField
from nerfgen.render import OccGridConfig, OccupancyGrid, render_rays
from nerfgen.render.normals import density_normals


class Ball(RadianceField):
    """A solid ball of radius 0.5 with a soft edge; colour is constant."""

    def __init__(self) -> None:
        super().__init__(torch.tensor([-1.0, -1, -1, 1, 1, 1]))
        self.scale = torch.nn.Parameter(torch.tensor(50.0))

    def density(self, positions, cond=None):
        return self.scale * torch.sigmoid((0.5 - positions.norm(dim=-1)) * 40)

    def forward(self, positions, directions, cond=None):
        return FieldOutput(self.density(positions), torch.full_like(positions, 0.5))


def test_normals_of_a_ball_point_outwards():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    x = 0.5 * x / x.norm(dim=-1, keepdim=True)
    n = density_normals(Ball().density, x, 1e-3)
    assert torch.allclose(n, x / 0.5, atol=1e-3)


def test_rendered_normals_face_the_camera_and_carry_gradients():
    ball = Ball()
    est = OccupancyGrid(ball.aabb, 1, OccGridConfig(resolution=16, coarse_while_dense=False))
    uv = torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) * 0.5 - 0.25
    origins = torch.cat([uv, torch.full((64, 1), -3.0)], -1)
    directions = torch.tensor([[0.0, 0, 1]]).expand(64, 3)
    out = render_rays(ball, est, Rays(origins, directions.contiguous()), torch.zeros(3), normals=True)
    z = -torch.sqrt(0.25 - (uv**2).sum(-1))  # the front of the ball, facing -z
    expected = torch.cat([uv, z[:, None]], -1) / 0.5
    cos = torch.nn.functional.cosine_similarity(out.normals, expected, dim=-1)
    assert float(cos.detach().min()) > 0.99
    assert torch.allclose(out.normals.detach().norm(dim=-1), out.opacity.detach(), atol=0.02)
    out.normals.sum().backward()
    assert ball.scale.grad is not None and torch.isfinite(ball.scale.grad)
