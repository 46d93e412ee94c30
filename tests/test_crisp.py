"""The fuzz figures of generated objects (nerfgen.generate.crisp) on images and fields whose answer
is known: hard, anti-aliased and ramped edges; a smooth and a noisy density around one sphere."""

import pytest
import torch
import trimesh

from nerfgen.generate.crisp import edge_width, normal_consistency, semi_transparent_share


def _disc(ramp: float, size: int = 96, radius: float = 30.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    r = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2).sqrt()
    return ((radius + ramp / 2 - r) / ramp).clamp(0, 1)


def _antialiased_disc(size: int = 96, radius: float = 30.0, ss: int = 8) -> torch.Tensor:
    c = (torch.arange(size * ss) + 0.5) / ss
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    inside = (((xx - size / 2) ** 2 + (yy - size / 2) ** 2).sqrt() < radius).float()
    return inside.view(size, ss, size, ss).mean((1, 3))


def test_edge_width_follows_the_ramp():
    assert edge_width(_antialiased_disc()) == pytest.approx(1.2, abs=0.2)
    # a ramp over w pixels goes from 0.9 to 0.1 in 0.8 w (bilinear sampling widens the narrow ones)
    assert [edge_width(_disc(w)) for w in (4.0, 8.0)] == pytest.approx([3.2, 6.4], rel=0.06)
    assert 1.6 < edge_width(_disc(2.0)) < 2.0
    # a haze that never reaches 0.9 counts as the widest edge
    assert edge_width(0.6 * _antialiased_disc()) == pytest.approx(16.0)
    assert edge_width(torch.zeros(16, 16)) == 0.0


def test_semi_transparent_share():
    assert semi_transparent_share(_antialiased_disc()) < 0.06
    assert semi_transparent_share(_disc(8.0)) > 0.25
    cloud = 0.5 * _antialiased_disc()
    assert semi_transparent_share(cloud) == pytest.approx(1.0)
    assert semi_transparent_share(torch.zeros(4, 4)) == 0.0


def test_normal_consistency_sees_a_noisy_gradient():
    sphere = trimesh.creation.icosphere(3)

    def smooth(x):
        return 10 * torch.sigmoid(20 * (1 - x.norm(dim=-1)))

    def noisy(x):
        return smooth(x) + 3 * torch.sin(40 * x).sum(-1)

    assert normal_consistency(smooth, sphere.vertices, sphere.faces) > 0.999
    assert normal_consistency(noisy, sphere.vertices, sphere.faces) < 0.5
    # faces wound the other way face against the density's outward normal
    assert normal_consistency(smooth, sphere.vertices, sphere.faces[:, ::-1]) < -0.999
