"""GAN run directories: ``run.json`` (kind ``gan``, the :class:`~nerfgen.gan.config.GanConfig`)
and ``model.safetensors`` (the generator, its EMA and the discriminator), opened as a
:class:`GanRun` that samples, renders chosen scenes and shows one scene in the viewer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor, nn

from nerfgen.cameras import Cameras, Orbit
from nerfgen.config import config_to_dict, stored_config
from nerfgen.files import atomic_write, load_state, read_json, read_tensors, write_json, write_tensors
from nerfgen.gan.config import GanConfig
from nerfgen.gan.generator import Generator, GiraffeGenerator, build_generator
from nerfgen.gan.priors import SceneCodes, prior_cameras, sample_codes
from nerfgen.kinds import RUN_FILE, RunKind, described_by
from nerfgen.render import ImageOutput, background_color
from nerfgen.renderable import RenderTraits, VideoRenders

MODEL_FILE = "model.safetensors"
FORMAT = 1


@dataclass
class GanRunInfo:
    """What a GAN run directory says about its run besides the tensors.

    Attributes:
        config: the run's config.
        data: the image folder it trained on.
    """

    config: GanConfig
    data: str
    kind: RunKind = RunKind.GAN
    background: str = "white"

    @property
    def width(self) -> int:
        return self.config.size

    @property
    def height(self) -> int:
        return self.config.size

    @property
    def orbit(self) -> Orbit:
        """The circle videos and the viewer start from: the camera prior's mean distance and elevation."""
        cam = self.config.camera
        return Orbit.around_origin(sum(cam.distance) / 2, sum(cam.elevation) / 2, cam.fov, self.config.size)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": RunKind.GAN.value, "data": self.data, "config": config_to_dict(self.config)}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> GanRunInfo:
        if d.get("format") != FORMAT or d.get("kind") != RunKind.GAN.value:
            raise ValueError(f"{source}: not a GAN run (format {d.get('format')!r}, kind {d.get('kind')!r})")
        try:
            return cls(stored_config(GanConfig, d["config"], f"{source}: config"), str(d["data"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: missing or malformed entry {exc}; not a nerfgen GAN run directory") from exc


def write_gan_run(run_dir: str | Path, info: GanRunInfo, modules: dict[str, nn.Module]) -> None:
    """Write ``model.safetensors`` (each module's state under its name) and ``run.json``, atomically."""
    run_dir = Path(run_dir)
    tensors, seen = {}, set()
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            shared = value.data_ptr() in seen  # one module under two names: safetensors wants copies
            seen.add(value.data_ptr())
            tensors[f"{name}.{key}"] = value.clone() if shared else value
    write_tensors(run_dir / MODEL_FILE, tensors)
    write_json(run_dir / RUN_FILE, info.to_dict())


def to_uint8(images: Tensor) -> np.ndarray:
    """``[B, 3, H, W]`` in [0, 1] -> ``[B, H, W, 3]`` uint8."""
    return (images.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """``[N, H, W, 3]`` -> one ``[rows * H, columns * W, 3]`` sheet (white where no image)."""
    n, h, w, _ = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    sheet = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = image
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write ``image [H, W, 3]`` uint8 to ``path`` (a temporary name, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: iio.imwrite(tmp, image, extension=".png"))
    return path


class GanRun(VideoRenders):
    """A trained generator, ready to sample and render: what :func:`load_gan_run` gives.

    Attributes:
        info: the :class:`GanRunInfo`.
        generator: the EMA generator (what samples and evaluation use), in eval mode.
        path: the run directory.
        scene: the one scene :meth:`render` shows (the viewer edits it): scene 0 of seed 0 until set.

    >>> run = load_gan_run("runs/clevr")                                   # doctest: +SKIP
    >>> codes = run.codes(4, seed=1)                                       # doctest: +SKIP
    >>> codes.translation[0, 0, 0] += 0.5      # move object 0 of scene 0  # doctest: +SKIP
    >>> images = run.images(codes)             # [4, 3, 64, 64] in [0, 1]  # doctest: +SKIP
    """

    def __init__(self, info: GanRunInfo, generator: Generator, path: str | Path) -> None:
        self.info, self.generator, self.path = info, generator, Path(path)
        self.scene = self.codes(1, seed=0)
        # GIRAFFE's neural renderer is convolutional: whole frames only (GRAF renders rays, in bands)
        self.traits = RenderTraits(whole_frames=isinstance(generator, GiraffeGenerator), normals=False)

    @property
    def config(self) -> GanConfig:
        return self.info.config

    @property
    def background(self) -> Tensor:
        """``[3]`` what the viewer fills empty frames with."""
        return background_color(self.info.background)

    @property
    def slots(self) -> int:
        """Object slots the generator was trained with (GRAF: 1)."""
        return self.config.slots

    def codes(self, count: int, seed: int = 0, slots: int | None = None) -> SceneCodes:
        """``count`` scenes from the run's priors, repeatable for ``seed``."""
        cfg = self.config
        gen = torch.Generator().manual_seed(seed)
        return sample_codes(count, cfg.shape_latent, cfg.appearance_latent, cfg.objects, cfg.camera, gen,
                            slots or self.slots, cfg.appearance_modes, cfg.appearance_spread)

    def cameras(self, codes: SceneCodes, side: int | None = None) -> Cameras:
        """The cameras of ``codes.views`` at ``side`` pixels (default the run's size)."""
        return prior_cameras(self.config.camera, codes.views, side or self.config.size)

    @torch.no_grad()
    def images(self, codes: SceneCodes, cameras: Cameras | None = None, batch: int = 16) -> Tensor:
        """``[B, 3, S, S]`` in [0, 1] on the CPU: the scenes through their cameras (``codes.views``
        unless given)."""
        cameras = cameras or self.cameras(codes)
        device = self.generator.device
        out = []
        for i in range(0, len(codes), batch):
            rows = list(range(i, min(i + batch, len(codes))))
            out.append(self.generator(codes[rows].to(device), cameras[rows]).cpu())
        return torch.cat(out)

    def sample(self, count: int, seed: int = 0) -> np.ndarray:
        """``[count, S, S, 3]`` uint8 samples."""
        return to_uint8(self.images(self.codes(count, seed)))

    def write_sample_sheet(self, path: str | Path, count: int = 64, seed: int = 0) -> Path:
        """A square sheet of ``count`` samples as a PNG."""
        return write_png(path, image_grid(self.sample(count, seed)))

    def export_mesh(self, output: str | Path, **options) -> dict:
        raise ValueError(f"{self.path}: a GAN run generates a new scene per code; export a mesh from a "
                         "reconstruction or text-to-3D run (`nerfgen gan render` writes this run's videos)")

    @torch.no_grad()
    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond=None, chunk: int = 1 << 14, codes: SceneCodes | None = None) -> ImageOutput:
        """Camera ``index`` of any ``cameras`` looking at :attr:`scene` (or scene 0 of ``codes``):
        colour, depth and opacity on the CPU. GIRAFFE renders the whole frame (its neural renderer
        is convolutional); sizes that are not a multiple of ``upsample`` are rendered a little
        larger and cropped. ``background``, ``normals`` and ``cond`` are not used."""
        codes = (codes if codes is not None else self.scene)[[0]].to(self.generator.device)
        cam = cameras[[index]]
        if isinstance(self.generator, GiraffeGenerator):
            return self._render_giraffe(codes, cam)
        out = self.generator.scene_rays(codes, cam, 0)
        h, w = cam.height, cam.width
        return ImageOutput(out.rgb.view(h, w, 3).cpu(), out.depth.view(h, w).cpu(), out.opacity.view(h, w).cpu())

    def _render_giraffe(self, codes: SceneCodes, cam: Cameras) -> ImageOutput:
        up = self.config.upsample
        h, w = cam.height, cam.width
        big_h, big_w = math.ceil(h / up) * up, math.ceil(w / up) * up
        big = Cameras(cam.c2w, cam.fx, cam.fy, cam.cx + (big_w - w) / 2, cam.cy + (big_h - h) / 2, big_w, big_h)
        low = self.generator.feature_cameras(big)
        out = self.generator.scene_rays(codes, low, 0)
        features = out.features.view(1, low.height, low.width, -1).permute(0, 3, 1, 2)
        rgb = self.generator.renderer(features)[0].permute(1, 2, 0)
        top, left = (big_h - h) // 2, (big_w - w) // 2

        def upsampled(t: Tensor) -> Tensor:
            t = torch.nn.functional.interpolate(t.view(1, 1, low.height, low.width), size=(big_h, big_w))[0, 0]
            return t[top:top + h, left:left + w].cpu()

        return ImageOutput(rgb[top:top + h, left:left + w].cpu(), upsampled(out.depth), upsampled(out.opacity))


def read_gan_info(run_dir: str | Path) -> GanRunInfo:
    path = Path(run_dir) / RUN_FILE
    return GanRunInfo.from_dict(read_json(path), str(path))


def open_gan_run(run_dir: str | Path, info: GanRunInfo, device: str) -> GanRun:
    """Open the GAN run in ``run_dir`` (described by ``info``) on ``device``: its EMA generator."""
    with described_by(run_dir):
        generator = build_generator(info.config)
    path = Path(run_dir) / MODEL_FILE
    tensors = read_tensors(path)
    ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    load_state(generator, ema, path, "the generator its run.json describes (ema.*)")
    return GanRun(info, generator.to(device).eval(), run_dir)


__all__ = ["GanRun", "GanRunInfo", "image_grid", "open_gan_run", "read_gan_info", "write_gan_run"]
