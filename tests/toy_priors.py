"""Toy diffusion priors for tests: exact denoisers whose answers are known by hand."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nerfgen.prior import DiffusionPrior, PromptEmbedding, Views


def linear_schedule(n_steps: int = 1000) -> Tensor:
    """``alphas_cumprod [n_steps]`` of DDPM's linear betas (1e-4 to 0.02)."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, n_steps), 0)


class LinearPrior(DiffusionPrior):
    r"""Pixel-space prior with :math:`\hat\epsilon = a z_t + e` (``e`` the embedding, a scalar per
    image): guidance and SDS values can be computed by hand. Records what it was called with."""

    def __init__(self, a: float = 0.5, alphas_cumprod: Tensor | None = None, resolution: int = 4) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(a))
        self.resolution = resolution
        self.register_buffer("alphas_cumprod", linear_schedule() if alphas_cumprod is None else alphas_cumprod)
        self.calls: list[tuple[Tensor, Tensor, Tensor]] = []

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        return PromptEmbedding(torch.tensor([[float(len(prompt))]]), torch.tensor([[float(len(negative_prompt))]]))

    def encode_images(self, images: Tensor) -> Tensor:
        return images * 2 - 1

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        self.calls.append((z_t.clone(), t.clone(), embeddings.clone()))
        return self.a * z_t + embeddings.view(-1, 1, 1, 1)


def box_views_image(views: Views, fov_deg: float, resolution: int, half: float, color: Tensor) -> Tensor:
    """``[B, 3, R, R]``: an axis-aligned cube of half side ``half`` at the origin in ``color`` on
    white, seen from ``views`` (its own camera code: +z up, camera at ``r(cos e cos a, cos e sin a,
    sin e)`` looking at the origin)."""
    e, a = torch.deg2rad(views.elevation), torch.deg2rad(views.azimuth)
    eye = views.distance[:, None] * torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1)  # [B, 3]
    forward = -eye / eye.norm(dim=-1, keepdim=True)
    right = torch.linalg.cross(forward, torch.tensor([0.0, 0.0, 1.0]).expand_as(forward))
    right = right / right.norm(dim=-1, keepdim=True)
    up = torch.linalg.cross(right, forward)
    tan = math.tan(math.radians(fov_deg) / 2)
    s = (torch.arange(resolution) + 0.5) / resolution * 2 - 1  # pixel centres in [-1, 1]
    y, x = torch.meshgrid(-s * tan, s * tan, indexing="ij")  # rows go down
    d = forward[:, None, None] + x[None, ..., None] * right[:, None, None] + y[None, ..., None] * up[:, None, None]
    o = eye[:, None, None].expand_as(d)
    with torch.no_grad():
        inv = 1 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        t0, t1 = (-half - o) * inv, (half - o) * inv
        near = torch.minimum(t0, t1).amax(-1)
        far = torch.maximum(t0, t1).amin(-1)
        hit = (far > near) & (far > 0)
    image = torch.where(hit[..., None], color, torch.ones(3))
    return image.permute(0, 3, 1, 2)


class BoxTargetPrior(DiffusionPrior):
    r"""A camera-conditioned prior whose only clean image is a coloured cube on white:
    :math:`\hat\epsilon = (z_t - \sqrt{\bar\alpha} x_0(v)) / \sqrt{1-\bar\alpha}` with :math:`x_0(v)`
    the cube seen from view :math:`v` (same for every prompt). Score distillation against it pulls
    renders towards the cube from every side, so it checks the generation loop's cameras, views
    and gradients without a trained model."""

    camera_conditioned = True

    def __init__(self, color=(0.85, 0.1, 0.1), half: float = 0.45, fov: float = 40.0, resolution: int = 32) -> None:
        super().__init__()
        self.color, self.half, self.fov, self.resolution = torch.tensor(color), half, fov, resolution
        self.register_buffer("alphas_cumprod", linear_schedule())

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        return PromptEmbedding(torch.ones(1, 1), torch.zeros(1, 1))

    def encode_images(self, images: Tensor) -> Tensor:
        return images * 2 - 1

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        x0 = box_views_image(views, self.fov, self.resolution, self.half, self.color) * 2 - 1
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (z_t - ab.sqrt() * x0) / (1 - ab).sqrt()
