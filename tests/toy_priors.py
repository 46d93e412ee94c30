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
    return boxes_views_image(views, fov_deg, resolution, [((0.0, 0.0, 0.0), half, color)])


def boxes_views_image(views: Views, fov_deg: float, resolution: int, boxes) -> Tensor:
    """``[B, 3, R, R]``: axis-aligned cubes ``boxes`` (``(centre, half side, colour)`` each) on
    white, the nearest one seen in each pixel, from ``views`` (as :func:`box_views_image`)."""
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
    image = torch.ones(*d.shape[:-1], 3)
    nearest = torch.full(d.shape[:-1], math.inf)
    with torch.no_grad():
        inv = 1 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
        for centre, half, color in boxes:
            o = eye[:, None, None].expand_as(d) - torch.tensor(centre, dtype=torch.float32)
            t0, t1 = (-half - o) * inv, (half - o) * inv
            near = torch.minimum(t0, t1).amax(-1)
            far = torch.maximum(t0, t1).amin(-1)
            hit = (far > near) & (far > 0) & (near < nearest)
            nearest = torch.where(hit, near, nearest)
            image = torch.where(hit[..., None], torch.as_tensor(color, dtype=torch.float32), image)
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


class PromptBoxesPrior(DiffusionPrior):
    """Like :class:`BoxTargetPrior`, with a clean image per prompt: ``targets[prompt]`` is a list
    of cubes ``(centre, half side, colour)`` (one for an object's phrase, several for a scene)."""

    camera_conditioned = True

    def __init__(self, targets: dict, fov: float = 40.0, resolution: int = 32) -> None:
        super().__init__()
        self.prompts = list(targets)
        self.targets, self.fov, self.resolution = targets, fov, resolution
        self.register_buffer("alphas_cumprod", linear_schedule())

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        return PromptEmbedding(torch.tensor([[float(self.prompts.index(prompt))]]), torch.full((1, 1), -1.0))

    def encode_images(self, images: Tensor) -> Tensor:
        return images * 2 - 1

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        index = embeddings.view(-1).long().tolist()
        x0 = torch.cat([boxes_views_image(Views(views.elevation[i:i + 1], views.azimuth[i:i + 1],
                                                views.distance[i:i + 1]), self.fov, self.resolution,
                                          self.targets[self.prompts[j]] if j >= 0 else [])
                        for i, j in enumerate(index)]) * 2 - 1
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (z_t - ab.sqrt() * x0.to(z_t.device)) / (1 - ab).sqrt()
