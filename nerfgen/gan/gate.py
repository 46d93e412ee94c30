"""The quality gate of a GAN run on an embedded set: what a person sees in the samples, in numbers.

Generated images and held-out real ones go through the same segmentation
(:mod:`nerfgen.gan.segment`), and their objects are compared:

* ``count_tv``: total-variation distance between the distributions of objects per image;
* ``area_ratio``: median object area, generated over real;
* ``colour_within``: share of generated objects whose mean colour lies within
  :data:`PALETTE_TOLERANCE` of the set's palette *as rendered* (:class:`Palette`), beside the real
  share; ``value_ratio`` / ``saturation_ratio``: the objects' mean brightness and saturation,
  generated over real (dark, dull objects);
* ``edge_chroma_ratio``: the chroma of the colour gradient across object borders, generated over
  real; ``edge_fringe_excess``: how much more of it than in the real images lies outside the
  objects' own hues (colour fringes; the real images have about 0.005);
* nearest neighbours (:class:`Neighbours`): memorisation and diversity in pixel and encoder space.

:data:`GATE` holds the bounds each figure must meet; they were set between the real images
against themselves (two halves of the held-out images) and deliberately broken generators
(:func:`broken_images`: fringes added, colours darkened, training images copied, one image
repeated), see ``tests/test_gan_gate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nerfgen.gan.segment import Backdrop, ObjectTable, as_images

PALETTE_TOLERANCE = 0.1
"""RGB distance (in [0, 1]) from the palette within which an object's colour is the set's (25 of 255)."""
SHADING_PERCENTILES = (2.0, 98.0)
"""The shading range of a palette colour: these percentiles of its real objects' shading."""


@dataclass(frozen=True)
class Bound:
    """``low <= figure <= high`` (None: unbounded on that side)."""

    low: float | None = None
    high: float | None = None

    def holds(self, value: float) -> bool:
        return bool(np.isfinite(value)) and (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)


GATE: dict[str, Bound] = {
    "colour_within": Bound(low=0.9),
    "area_ratio": Bound(0.8, 1.2),
    "edge_chroma_ratio": Bound(1 / 1.5, 1.5),
    "edge_fringe_excess": Bound(high=0.03),
    "count_tv": Bound(high=0.15),
    "value_ratio": Bound(0.85, 1.15),
    "memorisation_pixel": Bound(low=0.5),
    "memorisation_encoder": Bound(low=0.5),
    "diversity_pixel": Bound(low=0.5),
    "diversity_encoder": Bound(low=0.5),
}
"""What a generator must meet (issue 27's figures, plus brightness and the neighbour checks)."""


@dataclass
class Palette:
    """The set's colours as its images show them: colour ``p`` appears as ``s * albedo[p]`` with its
    shading ``s`` in ``shading[p]`` (the light and the views of the set decide the range; measured
    on real objects matched to their labels).

    Attributes:
        names: ``[P]`` colour names (``scenes.objects.COLOURS``).
        albedo: ``[P, 3]`` their albedos.
        shading: ``[P, 2]`` lowest and highest shading of each.
        tolerance: distance within which a colour is the palette's.
    """

    names: tuple[str, ...]
    albedo: np.ndarray
    shading: np.ndarray
    tolerance: float = PALETTE_TOLERANCE

    def distance(self, colours: np.ndarray) -> np.ndarray:
        """``[N]`` distance of each of ``colours [N, 3]`` to the nearest palette colour (the nearest
        point of its shading segment)."""
        c = np.asarray(colours, dtype=np.float64)[:, None]  # [N, 1, 3]
        a = self.albedo[None]  # [1, P, 3]
        s = (c * a).sum(-1) / np.maximum((a * a).sum(-1), 1e-9)  # [N, P] best shading
        s = np.clip(s, self.shading[:, 0], self.shading[:, 1])
        return np.linalg.norm(c - s[..., None] * a, axis=-1).min(1)

    def to_dict(self) -> dict:
        return {"tolerance": self.tolerance, "colours": {
            n: {"albedo": [round(float(v), 4) for v in a], "shading": [round(float(v), 4) for v in s]}
            for n, a, s in zip(self.names, self.albedo, self.shading)}}


def palette_from_real(table: ObjectTable, labels: np.ndarray, entries: list[dict], masks) -> Palette:
    """The :class:`Palette` of real images: each object found (``table``, label maps ``labels [B, H, W]``)
    takes the colour name of the labelled object it overlaps most (``masks(entry) -> [K, H, W]`` bool,
    e.g. :func:`nerfgen.scenes.gan_sets.object_masks`; objects overlapping none are left out); each
    name's shading range is the :data:`SHADING_PERCENTILES` of its objects' shading (all objects'
    where a name has fewer than 5).

    Raises:
        ValueError: when no object overlaps a labelled one (the labels are not those of the images).
    """
    from nerfgen.scenes.objects import COLOURS

    names, rows = [], []
    for b, entry in enumerate(entries):
        truth = masks(entry)
        for k in range(1, int(labels[b].max()) + 1):
            overlap = (truth & (labels[b] == k)).reshape(len(truth), -1).sum(1)
            if len(overlap) and overlap.max() > 0:
                names.append(entry["objects"][int(overlap.argmax())]["colour"])
                rows.append(np.flatnonzero(table.image == b)[k - 1])
    if not names:
        raise ValueError(f"palette_from_real: none of the {len(table.image)} objects found in {len(entries)} real "
                         "images overlaps a labelled object; are the labels those of these images?")
    names = np.asarray(names)
    colours = table.colour[rows]
    albedo = np.asarray([COLOURS[n] for n in names], dtype=np.float64)
    s = (colours * albedo).sum(-1) / (albedo * albedo).sum(-1)
    pooled = np.percentile(s, SHADING_PERCENTILES)
    unique = tuple(sorted(set(names.tolist())))
    ranges = [np.percentile(s[names == n], SHADING_PERCENTILES) if (names == n).sum() >= 5 else pooled
              for n in unique]
    return Palette(unique, np.asarray([COLOURS[n] for n in unique], dtype=np.float64), np.asarray(ranges))


def _share(counts: np.ndarray, top: int) -> np.ndarray:
    return np.bincount(np.minimum(counts, top), minlength=top + 1) / max(len(counts), 1)


def _value_saturation(colours: np.ndarray) -> tuple[float, float]:
    if not len(colours):
        return float("nan"), float("nan")
    value = colours.max(1)
    return float(value.mean()), float(((value - colours.min(1)) / np.maximum(value, 1e-6)).mean())


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 and np.isfinite(a) and np.isfinite(b) else float("nan")


def object_figures(real: ObjectTable, fake: ObjectTable, palette: Palette) -> dict:
    """The object figures (module docstring) of ``fake`` against ``real``."""
    top = int(max(real.count.max(initial=0), fake.count.max(initial=0)))
    figures: dict = {"count_tv": float(0.5 * np.abs(_share(real.count, top) - _share(fake.count, top)).sum())}
    for name, table in (("real", real), ("fake", fake)):
        figures[f"count_share_{name}"] = [round(float(v), 4) for v in _share(table.count, top)]
        distance = palette.distance(table.colour) if len(table.colour) else np.zeros(0)
        value, saturation = _value_saturation(table.colour)
        figures.update({
            f"objects_{name}": int(len(table.image)),
            f"area_median_{name}_px": float(np.median(table.area)) if len(table.area) else float("nan"),
            f"colour_within_{name}": float((distance <= palette.tolerance).mean()) if len(distance) else float("nan"),
            f"colour_distance_{name}": float(distance.mean()) if len(distance) else float("nan"),
            f"value_{name}": value, f"saturation_{name}": saturation,
            f"edge_chroma_{name}": float(np.nanmean(table.edge_chroma)) if np.isfinite(table.edge_chroma).any()
            else float("nan"),
            f"edge_fringe_{name}": float(np.nanmean(table.edge_fringe)) if np.isfinite(table.edge_fringe).any()
            else float("nan"),
            f"backdrop_shift_{name}": float(table.backdrop_shift.mean()),
        })
    figures["colour_within"] = figures["colour_within_fake"]
    figures["edge_fringe_excess"] = figures["edge_fringe_fake"] - figures["edge_fringe_real"]
    for key in ("area_median", "value", "saturation", "edge_chroma"):
        suffix = "_px" if key == "area_median" else ""
        figures[f"{key.split('_median')[0]}_ratio"] = _ratio(figures[f"{key}_fake{suffix}"], figures[f"{key}_real{suffix}"])
    return figures


def _nearest(a: Tensor, b: Tensor, exclude_self: bool = False, chunk: int = 512) -> Tensor:
    """``[N]`` distance from each row of ``a [N, D]`` to its nearest row of ``b [M, D]`` (not itself)."""
    out = []
    b2 = (b * b).sum(1)
    for start in range(0, a.shape[0], chunk):
        x = a[start:start + chunk]
        d = ((x * x).sum(1, keepdim=True) + b2[None] - 2 * x @ b.T).clamp(min=0)
        if exclude_self:
            rows = torch.arange(x.shape[0])
            d[rows, rows + start] = float("inf")
        out.append(d.min(1).values.sqrt())
    return torch.cat(out)


class Neighbours:
    """Memorisation and diversity of generated images against held-out real ones ``held [M, 3, S, S]``
    and training images ``train [T, ...]`` (all in [0, 1]), in pixel space (RMS) and on the offline
    encoder; the real side is embedded once.

    * ``memorisation_*``: median distance of a generated image to its nearest training image over the
      same for a held-out image (about 1 for a generator of new images, near 0 for one that copies);
    * ``diversity_*``: median distance of a generated image to its nearest other generated one over the
      same among as many held-out images (near 0 when the generator repeats itself).
    """

    SPACES = ("pixel", "encoder")

    def __init__(self, held: Tensor, train: Tensor, encoder=None) -> None:
        from nerfgen.gan.encoders import load_encoder

        self.encoder = encoder or load_encoder(None)
        self.held_count, self.train_count = int(held.shape[0]), int(train.shape[0])
        self.train = {space: self.embed(space, train) for space in self.SPACES}
        self.held = {space: self.embed(space, held) for space in self.SPACES}
        self.to_train = {space: _nearest(self.held[space], self.train[space]) for space in self.SPACES}

    def embed(self, space: str, images: Tensor) -> Tensor:
        """``[N, D]`` the rows distances are measured between."""
        from nerfgen.gan.metrics import features

        images = images.float()
        return images.flatten(1) / images[0].numel() ** 0.5 if space == "pixel" else features(self.encoder, images)

    def figures(self, fake: Tensor) -> dict:
        """The ``memorisation_*`` and ``diversity_*`` figures of ``fake [N, 3, S, S]`` (diversity over
        the first ``min(N, M)`` images of each side)."""
        n = min(int(fake.shape[0]), self.held_count)
        out: dict = {"neighbour_images": n, "neighbour_train_images": self.train_count}
        for space in self.SPACES:
            f = self.embed(space, fake)
            out[f"memorisation_{space}"] = float(_nearest(f, self.train[space]).median()
                                                 / self.to_train[space].median().clamp(min=1e-12))
            out[f"diversity_{space}"] = float(_nearest(f[:n], f[:n], True).median()
                                              / _nearest(self.held[space][:n], self.held[space][:n], True)
                                              .median().clamp(min=1e-12))
        return out


def gate(figures: dict, bounds: dict[str, Bound] | None = None) -> dict:
    """Each bound of ``bounds`` (default :data:`GATE`) checked against ``figures`` (missing figures
    are skipped): ``{"checks": {name: {"value", "low", "high", "pass"}}, "passed": bool}``."""
    checks = {name: {"value": figures[name], "low": b.low, "high": b.high, "pass": b.holds(figures[name])}
              for name, b in (bounds or GATE).items() if name in figures}
    return {"checks": checks, "passed": all(c["pass"] for c in checks.values())}


BROKEN_KINDS = ("fringes", "dark", "hue", "blur", "copies", "repeat")
"""The broken generators :func:`broken_images` imitates."""
BROKEN_HUE_DEG = 40.0
BROKEN_BLUR_SIGMA = 1.0


def _turn(colours: Tensor, degrees: float) -> Tensor:
    """``colours [B, 3, H, W]`` (grey removed) turned ``degrees`` about the grey axis (Rodrigues)."""
    k = torch.full((3,), 3 ** -0.5, dtype=colours.dtype)
    a = np.radians(degrees)
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]], dtype=colours.dtype)
    rotation = torch.eye(3, dtype=colours.dtype) * np.cos(a) + np.sin(a) * cross + (1 - np.cos(a)) * torch.outer(k, k)
    return torch.einsum("ij,bjhw->bihw", rotation, colours)


def _gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """``images [B, C, H, W]`` blurred by a separable Gaussian (edges replicated)."""
    reach = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-reach, reach + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = torch.nn.functional.pad(images, (reach, reach, reach, reach), mode="replicate")
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def broken_images(images: Tensor, kind: str, backdrop: Backdrop, train: Tensor | None = None) -> Tensor:
    """What a broken generator would give instead of ``images [B, 3, S, S]`` in [0, 1]:

    * ``fringes``: red and blue channels shifted one pixel apart (colour fringes at every edge);
    * ``dark``: objects (whatever is not backdrop) darkened to 70% and pulled 30% toward grey;
    * ``hue``: objects' colours turned :data:`BROKEN_HUE_DEG` about the grey axis (colours off the palette);
    * ``blur``: a Gaussian blur of :data:`BROKEN_BLUR_SIGMA` pixels (soft edges, smeared colours);
    * ``copies``: training images ``train`` (a generator that memorised them);
    * ``repeat``: the first 4 images over and over (a collapsed generator).
    """
    if kind in ("dark", "hue"):
        from nerfgen.gan.segment import object_pixels

        mask = torch.from_numpy(np.stack([object_pixels(im, backdrop)[0] for im in as_images(images)]))[:, None]
        grey = images.mean(1, keepdim=True)
        changed = 0.7 * (0.7 * images + 0.3 * grey) if kind == "dark" else grey + _turn(images - grey, BROKEN_HUE_DEG)
        return torch.where(mask, changed.clamp(0, 1), images)
    if kind == "blur":
        return _gaussian_blur(images, BROKEN_BLUR_SIGMA)
    if kind == "fringes":
        out = images.clone()
        out[:, 0] = torch.roll(images[:, 0], 1, dims=-1)
        out[:, 2] = torch.roll(images[:, 2], -1, dims=-1)
        return out
    if kind == "copies":
        if train is None or train.shape[0] < images.shape[0]:
            raise ValueError("broken_images('copies') needs at least as many training images as images")
        return train[:images.shape[0]].clone()
    if kind == "repeat":
        return images[:4].repeat((images.shape[0] + 3) // 4, 1, 1, 1)[:images.shape[0]]
    raise ValueError(f"broken_images: unknown kind {kind!r}; expected one of {', '.join(BROKEN_KINDS)}")


__all__ = ["BROKEN_KINDS", "GATE", "Bound", "Neighbours", "Palette", "broken_images", "gate", "object_figures",
           "palette_from_real"]
