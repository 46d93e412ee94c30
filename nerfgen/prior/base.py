r"""The interface every diffusion prior implements, and score distillation on top of it.

A prior scores images; it knows nothing about fields, rays or cameras beyond each image's
viewing angles. Score distillation sampling (DreamFusion, Poole et al. 2022) turns it into a
loss on rendered images :math:`x = g(\theta)`:

.. math::
    \nabla_\theta \mathcal{L}_{SDS} = \mathbb{E}_{t, \epsilon}\Big[w(t)\,
    \big(\hat\epsilon(z_t; y, t) - \epsilon\big)\, \frac{\partial z}{\partial x}\frac{\partial x}{\partial\theta}\Big],
    \quad z_t = \sqrt{\bar\alpha_t}\, z + \sqrt{1 - \bar\alpha_t}\,\epsilon

with :math:`z` the image in the model's space (pixels in [-1, 1], or VAE latents),
classifier-free guidance :math:`\hat\epsilon = \epsilon_u + s(\epsilon_c - \epsilon_u)` and
:math:`w(t) = 1 - \bar\alpha_t`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nerfgen.cameras import Views


@dataclass
class PromptEmbedding:
    """A prompt and its negative, encoded: ``cond`` and ``uncond`` are ``[1, ...]`` (one prompt for
    the whole batch) or ``[B, ...]`` (one per image, e.g. view-dependent prompts)."""

    cond: Tensor
    uncond: Tensor


@dataclass
class SDSOutput:
    """One score-distillation evaluation: ``loss`` (scalar) and the timesteps drawn ``[B]``."""

    loss: Tensor
    timesteps: Tensor


class DiffusionPrior(nn.Module, abc.ABC):
    """A text-conditioned diffusion model that scores images.

    Subclasses register ``alphas_cumprod [T]`` (the noise schedule) and implement the three
    abstract methods.
    """

    camera_conditioned: bool = False
    """True when the model sees :class:`Views` (no view-dependent prompt suffixes needed)."""
    resolution: int = 64
    """Image side the model expects; renders are resized to it."""
    alphas_cumprod: Tensor

    @abc.abstractmethod
    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        """Encode a prompt and its negative (the unconditional branch of guidance)."""

    @abc.abstractmethod
    def encode_images(self, images: Tensor) -> Tensor:
        """``images [B, 3, H, W]`` in [0, 1] -> ``z [B, C, h, w]`` in model space, differentiable."""

    @abc.abstractmethod
    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        """``eps [N, C, h, w]`` for noisy ``z_t [N, C, h, w]`` at integer timesteps ``t [N]``
        under conditioning ``embeddings [N, ...]`` and ``views`` (``[N]``)."""

    def guided_noise(self, z_t: Tensor, t: Tensor, prompt: PromptEmbedding, views: Views, guidance: float) -> Tensor:
        r""":math:`\epsilon_u + s(\epsilon_c - \epsilon_u)`, one batched call for both branches."""
        b = z_t.shape[0]
        embeddings = torch.cat([prompt.cond.expand(b, *prompt.cond.shape[1:]),
                                prompt.uncond.expand(b, *prompt.uncond.shape[1:])])
        eps = self.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), embeddings, views.repeat(2))
        eps_cond, eps_uncond = eps.chunk(2)
        return eps_uncond + guidance * (eps_cond - eps_uncond)

    def sds_loss(
        self,
        images: Tensor,
        prompt: PromptEmbedding,
        views: Views,
        guidance: float,
        t_range: tuple[float, float] = (0.02, 0.98),
        generator: torch.Generator | None = None,
    ) -> SDSOutput:
        r"""Score-distillation loss of ``images [B, 3, H, W]`` in [0, 1].

        Its gradient with respect to :math:`z` is :math:`w(t)(\hat\epsilon - \epsilon) / B`
        (summed over pixels, averaged over the batch); the diffusion model gets no gradient.

        Args:
            images: renders in [0, 1] (resized by the caller to :attr:`resolution`).
            prompt: from :meth:`encode_prompt`.
            views: the renders' viewing angles.
            guidance: classifier-free guidance scale :math:`s`.
            t_range: timesteps drawn uniformly from this fraction of the schedule (annealed by
                the caller).
            generator: for the timesteps and the noise.
        """
        z = self.encode_images(images).float()  # the SDS arithmetic in fp32 even for fp16 models
        n_steps = self.alphas_cumprod.shape[0]
        lo, hi = int(t_range[0] * n_steps), max(int(t_range[0] * n_steps) + 1, int(t_range[1] * n_steps))
        t = torch.randint(lo, min(hi, n_steps), (z.shape[0],), generator=generator).to(z.device)
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device)
        alpha_bar = self.alphas_cumprod.to(z)[t].view(-1, *[1] * (z.ndim - 1))
        with torch.no_grad():
            z_t = alpha_bar.sqrt() * z + (1 - alpha_bar).sqrt() * noise
            eps_hat = self.guided_noise(z_t, t, prompt, views, guidance).float()
        grad = torch.nan_to_num((1 - alpha_bar) * (eps_hat - noise))
        target = (z - grad).detach()
        loss = 0.5 * (z - target).pow(2).sum() / z.shape[0]
        return SDSOutput(loss, t)
