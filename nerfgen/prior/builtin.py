"""The built-in prior: a small pixel-space diffusion model of our own, conditioned on a caption
embedding and the camera, trained offline on renders of the procedural object library
(``nerfgen prior train``) and shipped with the package (``weights/builtin.safetensors``).

What it was trained on, and so what a generation system must render to match it:

* images of ``RESOLUTION x RESOLUTION`` pixels, one object composited over a **white**
  background, the object centred at the origin and inside a sphere of radius 1;
* pinhole cameras looking at the origin with a field of view of ``FOV_DEG`` (horizontal =
  vertical), from ``distance`` in ``DISTANCE_RANGE`` and ``elevation`` in ``ELEVATION_RANGE``
  (degrees above the xy plane), any azimuth;
* world frame z up (``nerfgen.cameras`` OpenGL convention, ``look_at(..., up=(0, 0, 1))``): the
  camera sits at ``distance * (cos e cos a, cos e sin a, sin e)``, so azimuth 0 is on the +x
  axis (the object's front faces +x) and azimuth grows counter-clockwise seen from above, as in
  ``nerfgen.cameras.orbit_cameras``; the camera's right at azimuth 0 is +y.

Timesteps follow the cosine schedule (Nichol & Dhariwal 2021) with ``TIMESTEPS`` steps; the
network predicts the noise. The empty prompt is the zero embedding the model was trained to
read as "no caption" (classifier-free guidance).

>>> prior = load_builtin_prior(None, "cpu")  # doctest: +SKIP
>>> views = nerfgen.cameras.orbit_views(8, 15.0, VIEW_DISTANCE)  # doctest: +SKIP
>>> images = ddim_sample(prior, prior.encode_prompt("a red cube"), views, guidance=5.0)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.files import read_json, read_tensors, write_json, write_tensors
from nerfgen.prior.base import DiffusionPrior, PromptEmbedding, Views
from nerfgen.prior.guide import NoisyCLIP, guide_path, load_guide, save_guide
from nerfgen.prior.text import embed_texts
from nerfgen.prior.unet import UNet, UNetConfig

RESOLUTION = 32
"""Image side the shipped model works at."""
FOV_DEG = 36.0
"""Field of view of the training cameras (degrees, horizontal = vertical)."""
ELEVATION_RANGE = (-10.0, 60.0)
"""Elevations (degrees) the model was trained on."""
DISTANCE_RANGE = (3.0, 3.6)
"""Camera distances from the object's centre the model was trained on."""
VIEW_DISTANCE = sum(DISTANCE_RANGE) / 2
"""The mid training distance, where samples and tests look from."""
OBJECT_RADIUS = 1.0
"""Objects fit in a sphere of this radius about the origin."""
BACKGROUND = (1.0, 1.0, 1.0)
"""Background colour of the training images (white)."""
TIMESTEPS = 1000
WEIGHTS = Path(__file__).resolve().parent / "weights" / "builtin.safetensors"
"""The shipped weights; their JSON config sits beside them (``builtin.json``)."""


def cosine_alphas_cumprod(n_steps: int = TIMESTEPS, s: float = 0.008) -> Tensor:
    r""":math:`\bar\alpha_t` ``[n_steps]`` of the cosine schedule, betas clipped to 0.999."""
    x = torch.linspace(0, n_steps, n_steps + 1, dtype=torch.float64)
    f = torch.cos((x / n_steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


class BuiltinPrior(DiffusionPrior):
    """The built-in camera-conditioned pixel-space prior around a :class:`UNet`.

    Args:
        net: The noise predictor.
        n_steps: Length of the cosine schedule it was trained with.
    """

    camera_conditioned = True

    def __init__(self, net: UNet, n_steps: int = TIMESTEPS, guide: NoisyCLIP | None = None, guide_scale: float = 0.0):
        super().__init__()
        self.net = net
        self.guide = guide
        self.guide_scale = guide_scale
        self.resolution = net.config.resolution
        self.register_buffer("alphas_cumprod", cosine_alphas_cumprod(n_steps), persistent=False)

    def encode_prompt(self, prompt: str, negative_prompt: str = "") -> PromptEmbedding:
        """Sentence embeddings ``[1, 384]``; an empty negative prompt is the "no caption" zeros."""
        e = embed_texts([prompt, negative_prompt]).to(self.alphas_cumprod.device)
        return PromptEmbedding(cond=e[:1], uncond=e[1:])

    def encode_images(self, images: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``[B, 3, R, R]`` in [-1, 1] (antialiased resize)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [B, 3, H, W], got {list(images.shape)}")
        if images.shape[-2:] != (self.resolution, self.resolution):
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear",
                                   align_corners=False, antialias=True)
        return images * 2 - 1

    def predict_noise(self, z_t: Tensor, t: Tensor, embeddings: Tensor, views: Views) -> Tensor:
        return self.net(z_t, t, embeddings.reshape(embeddings.shape[0], -1), views.stacked().to(z_t))

    def guided_noise(self, z_t: Tensor, t: Tensor, prompt: PromptEmbedding, views: Views, guidance: float) -> Tensor:
        r"""Classifier-free guidance, plus the guidance model's gradient when one is loaded:
        :math:`\hat\epsilon - s_{clip}\sqrt{1 - \bar\alpha_t}\,\nabla_{x_t}\tau\cos(f(x_t), g(y))`
        (:mod:`nerfgen.prior.guide`)."""
        eps = super().guided_noise(z_t, t, prompt, views, guidance)
        if self.guide is None or self.guide_scale <= 0:
            return eps
        text = prompt.cond.reshape(prompt.cond.shape[0], -1).expand(z_t.shape[0], -1)
        grad = self.guide.guidance_gradient(z_t, t, views.stacked().to(z_t), text)
        return eps - self.guide_scale * (1 - self.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1) * grad


@torch.no_grad()
def ddim_sample(prior: DiffusionPrior, prompt: PromptEmbedding, views: Views, guidance: float = 5.0,
                steps: int = 50, generator: torch.Generator | None = None) -> Tensor:
    r"""Deterministic DDIM (:math:`\eta = 0`) samples, one per view, with classifier-free guidance.

    Returns:
        ``[B, 3, R, R]`` images in [0, 1] (``B = len(views.azimuth)``).
    """
    ab = prior.alphas_cumprod
    n, r = views.azimuth.shape[0], prior.resolution
    z = torch.randn((n, 3, r, r), generator=generator).to(ab.device)
    ts = torch.linspace(ab.shape[0] - 1, 0, steps).round().long().tolist()
    for i, t in enumerate(ts):
        tt = torch.full((n,), t, dtype=torch.long, device=ab.device)
        eps = prior.guided_noise(z, tt, prompt, views, guidance)
        x0 = ((z - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
        eps = (z - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        ab_next = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        z = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
    return (z.clamp(-1, 1) + 1) / 2


@torch.no_grad()
def caption_errors(prior: BuiltinPrior, images: Tensor, views: Views, captions: Tensor, t: int, noises: int = 1,
                   generator: torch.Generator | None = None) -> Tensor:
    """The UNet as a diffusion classifier (Li et al. 2023): ``[C, B]`` mean squared error of the noise
    it predicts for ``images [B, 3, R, R]`` (in [0, 1]) noised at timestep ``t``, under each caption
    embedding ``captions [C, 384]``, the same noise draws for every caption. The lowest error names
    the caption the UNet finds most likely."""
    x = prior.encode_images(images)
    ab = prior.alphas_cumprod[t]
    c, b = captions.shape[0], x.shape[0]
    cameras = views.stacked().to(x).repeat(c, 1)
    out = torch.zeros(c, b, device=x.device)
    for _ in range(noises):
        noise = torch.randn(x.shape, generator=generator).to(x)
        x_t = (ab.sqrt() * x + (1 - ab).sqrt() * noise).repeat(c, 1, 1, 1)
        eps = prior.net(x_t, torch.full((c * b,), t, device=x.device), captions.to(x).repeat_interleave(b, 0), cameras)
        out += (eps - noise.repeat(c, 1, 1, 1)).square().mean(dim=(1, 2, 3)).reshape(c, b) / noises
    return out


def save_weights(path: Path, net: UNet, info: dict, half: bool = False) -> None:
    """Write ``net`` to ``path`` (safetensors) and its config + ``info`` to ``path.with_suffix('.json')``."""
    state = {k: (v.half() if half else v) for k, v in net.state_dict().items()}
    write_tensors(path, state)
    write_json(path.with_suffix(".json"), {"unet": dataclasses.asdict(net.config), "timesteps": TIMESTEPS,
                                           "schedule": "cosine", "prediction": "epsilon", **info})


def export_weights(model: str | Path, destination: str | Path = WEIGHTS) -> Path:
    """Store a trained model (see :func:`load_builtin_prior`) in fp16 at ``destination`` (+ its
    ``.json``): how the shipped ``weights/builtin.safetensors`` is made from a training run."""
    path = _weights_path(model)
    prior = load_builtin_prior(path)
    meta = read_json(path.with_suffix(".json"))
    info = {k: v for k, v in meta.items() if k not in ("unet", "timesteps", "schedule", "prediction")}
    save_weights(Path(destination), prior.net, info, half=True)
    if prior.guide is not None:
        guide_meta = read_json(guide_path(path).with_suffix(".json"))
        save_guide(guide_path(Path(destination)), prior.guide, {k: v for k, v in guide_meta.items() if k != "guide"}, half=True)
    return Path(destination)


def _weights_path(model: str | Path | None) -> Path:
    if model is None:
        return WEIGHTS
    path = Path(model)
    if path.is_dir():
        path = path / "model.safetensors"
    return path


def load_builtin_prior(model: str | Path | None = None, device: str = "cpu") -> BuiltinPrior:
    """The built-in prior from ``model`` (a ``.safetensors`` file with its ``.json`` beside it, or
    a ``nerfgen prior train`` output folder); None loads the shipped weights."""
    path = _weights_path(model)
    meta = read_json(path.with_suffix(".json"))
    if "unet" not in meta:
        raise ValueError(f"{path.with_suffix('.json')}: expected a built-in prior config with a 'unet' entry")
    net = UNet(UNetConfig(**meta["unet"]))
    state = read_tensors(path)
    try:
        net.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the architecture in {path.with_suffix('.json')} ({exc})") from exc
    guide, scale = None, 0.0
    if guide_path(path).is_file():
        guide, guide_meta = load_guide(guide_path(path))
        scale = float(guide_meta.get("scale", 0.0))
    prior = BuiltinPrior(net, int(meta.get("timesteps", TIMESTEPS)), guide, scale).to(device)
    prior.eval().requires_grad_(False)
    return prior
