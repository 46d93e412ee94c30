"""The quality gate of a GAN run on an embedded set (:mod:`nerfgen.gan.gate`), end to end: samples
of the run against held-out images, two halves of the held-out images against each other (the
floor), the palette measured on held-out images and their labels, and for GRAF the colour of one
object seen from :data:`VIEW_AZIMUTHS` azimuths against the same for real objects.

>>> reference = QualityReference(ImageCollection.from_folder("data/clevr", 64))    # doctest: +SKIP
>>> report = reference.report(run.images(run.codes(500, EVAL_SEED)))               # doctest: +SKIP
>>> report["passed"], report["checks"]["colour_within"]                            # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from nerfgen.gan.data import ImageCollection
from nerfgen.gan.evaluate import EVAL_SEED
from nerfgen.gan.gate import Neighbours, gate, object_figures, palette_from_real
from nerfgen.gan.segment import Backdrop, ObjectTable, backdrop_of, measure

EMBEDDED_SETS = ("clevr", "objects")
PALETTE_IMAGES = 200
"""Held-out images (and their labels) the palette's shading ranges are measured on."""
TRAIN_IMAGES = 5000
"""Training images the nearest-neighbour figures search (evenly spaced through the training split)."""
VIEW_AZIMUTHS = 8
VIEW_SCENES = 8


def embedded_labels(data: ImageCollection) -> dict | None:
    """The ``labels.json`` of ``data`` when it is an embedded set (``nerfgen gan data``), else None."""
    labels = data.labels
    ok = isinstance(labels, dict) and labels.get("set") in EMBEDDED_SETS and isinstance(labels.get("images"), list)
    return labels if ok else None


def unavailable(data: ImageCollection, least: int = 4) -> str | None:
    """Why the gate cannot look at ``data`` (not an embedded set, fewer than ``least`` held-out
    images), or None when it can."""
    if embedded_labels(data) is None:
        return (f"{data.root}: not an embedded set (the gate needs the labels.json of "
                "`nerfgen gan data clevr|objects`)")
    if len(data.held_out) < least:
        return f"{data.root}: {len(data.held_out)} held-out images (the gate needs at least {least})"
    return None


def _entries(data: ImageCollection, labels: dict, indices: Tensor) -> list[dict]:
    """The labels entries of the images at ``indices``."""
    by_file = {entry.get("file"): entry for entry in labels["images"]}
    out = []
    for i in indices.tolist():
        name = data.files[i].relative_to(data.root).as_posix()
        if name not in by_file:
            raise ValueError(f"{data.root / 'labels.json'}: no entry for {name}; the labels are not those of the images")
        out.append(by_file[name])
    return out


def _images(data: ImageCollection, indices: Tensor) -> Tensor:
    return (data.images_at(indices) + 1) * 0.5


def _object_colour(table: ObjectTable, count: int) -> np.ndarray:
    """``[count, 3]`` the area-weighted mean colour of each image's objects (NaN without any)."""
    out = np.full((count, 3), np.nan)
    for b in range(count):
        rows = table.image == b
        if rows.any():
            out[b] = (table.colour[rows] * table.area[rows, None]).sum(0) / table.area[rows].sum()
    return out


def colour_spread(colours: np.ndarray) -> tuple[float, float]:
    """``colours [scenes, views, 3]`` (NaN where a view shows no object) -> the mean over scenes of the
    RMS over channels of the colour's standard deviation across views, and the share of views
    showing an object."""
    shown = np.isfinite(colours).all(-1)
    spreads = [float(np.sqrt(c[s].var(0).mean())) for c, s in zip(colours, shown) if s.sum() >= 2]
    return (float(np.mean(spreads)) if spreads else float("nan")), float(shown.mean())


@torch.no_grad()
def view_figures(run, backdrop: Backdrop, scenes: int = VIEW_SCENES, seed: int = EVAL_SEED) -> dict:
    """How much one generated object's colour changes with the view: ``scenes`` codes of ``run``, each
    rendered from :data:`VIEW_AZIMUTHS` azimuths (its own elevation and distance), the colour of what
    the segmentation finds (:func:`colour_spread`)."""
    codes = run.codes(scenes, seed)
    colours = np.empty((scenes, VIEW_AZIMUTHS, 3))
    for a in range(VIEW_AZIMUTHS):
        turned = codes.clone()
        turned.views.azimuth[:] = (codes.views.azimuth + 360.0 * a / VIEW_AZIMUTHS) % 360.0
        colours[:, a] = _object_colour(measure(run.images(turned), backdrop), scenes)
    spread, shown = colour_spread(colours)
    return {"view_colour_std": spread, "view_object_shown": shown, "view_scenes": scenes}


def real_view_figures(labels: dict, backdrop: Backdrop, size: int, scenes: int = VIEW_SCENES) -> dict:
    """:func:`view_figures` of the real objects of the first ``scenes`` images of an ``objects`` set."""
    from nerfgen.scenes.gan_sets import object_orbit

    colours = np.empty((scenes, VIEW_AZIMUTHS, 3))
    for b in range(scenes):
        start = float(labels["images"][b]["azimuth_deg"])
        azimuths = [(start + 360.0 * a / VIEW_AZIMUTHS) % 360.0 for a in range(VIEW_AZIMUTHS)]
        colours[b] = _object_colour(measure(object_orbit(labels, b, azimuths, size), backdrop), VIEW_AZIMUTHS)
    spread, shown = colour_spread(colours)
    return {"view_colour_std_real": spread, "view_object_shown_real": shown}


def _train_subset(data: ImageCollection) -> Tensor:
    step = max(1, len(data.train) // TRAIN_IMAGES)
    return data.train[::step][:TRAIN_IMAGES]


class QualityReference:
    """What the gate compares samples with, measured once on an embedded set ``data``: the objects of
    two halves of ``count`` held-out images each (the first is the reference, the second gives the
    floor), the palette (on the first :data:`PALETTE_IMAGES` and their labels), the nearest-neighbour
    embeddings (held-out and :data:`TRAIN_IMAGES` training images) and, on ``objects``, the real
    view figures.

    Raises:
        ValueError: when ``data`` is not an embedded set or holds out fewer than 4 images.
    """

    def __init__(self, data: ImageCollection, count: int = 500) -> None:
        from nerfgen.scenes.gan_sets import object_masks

        reason = unavailable(data)
        if reason is not None:
            raise ValueError(reason)
        labels, held = data.labels, data.held_out
        half = min(count, len(held) // 2)
        self.set, self.size, self.labels = labels["set"], data.size, labels
        self.backdrop = backdrop_of(labels)
        real, other = _images(data, held[:half]), _images(data, held[half:2 * half])
        self.real, maps = measure(real, self.backdrop, keep_labels=True)
        n = min(PALETTE_IMAGES, half)
        self.palette = palette_from_real(self.real.head(n), maps[:n], _entries(data, labels, held[:n]),
                                         lambda entry: object_masks(entry, data.size))
        self.neighbours = Neighbours(real, _images(data, _train_subset(data)))
        floor = {**object_figures(self.real, measure(other, self.backdrop), self.palette),
                 **self.neighbours.figures(other)}
        self.floor = {"figures": floor, **gate(floor)}
        self._real_views: dict | None = None

    def real_views(self) -> dict:
        """:func:`real_view_figures` of the set (``objects`` only; computed once)."""
        if self._real_views is None:
            self._real_views = real_view_figures(self.labels, self.backdrop, self.size) if self.set == "objects" else {}
        return self._real_views

    def report(self, images: Tensor, run=None, views: bool = False) -> dict:
        """The figures and checks of generated ``images [N, 3, S, S]`` in [0, 1]; with ``views`` the
        view figures of ``run`` too.

        Returns:
            ``{"set", "images", "real_images", "figures", "checks", "passed", "real_halves": {figures,
            checks, passed}, "palette"}``.
        """
        figures = {**object_figures(self.real, measure(images, self.backdrop), self.palette),
                   **self.neighbours.figures(images)}
        if views:
            figures.update({**view_figures(run, self.backdrop), **self.real_views()})
        return {"set": self.set, "images": int(images.shape[0]), "real_images": len(self.real.count),
                "figures": figures, **gate(figures), "real_halves": self.floor, "palette": self.palette.to_dict()}


def quality_report(run, data: ImageCollection, count: int = 500) -> dict:
    """:meth:`QualityReference.report` of ``count`` samples of ``run`` (the evaluation scenes) on the
    embedded set ``data``; GRAF runs get the view figures too."""
    reference = QualityReference(data, count)
    images = run.images(run.codes(count, EVAL_SEED))
    return reference.report(images, run, views=run.config.model == "graf")


def gate_summary(report: dict) -> str:
    """One line per check of a :func:`quality_report`: the figure, its bound, pass or FAIL."""
    lines = [f"quality gate ({report['set']}, {report['images']} samples): {'passed' if report['passed'] else 'FAILED'}"]
    for name, check in report["checks"].items():
        bound = " and ".join(f"{op} {v:.3g}" for op, v in ((">=", check["low"]), ("<=", check["high"])) if v is not None)
        lines.append(f"  {name:<22} {check['value']:8.4f}  ({bound})  {'ok' if check['pass'] else 'FAIL'}")
    return "\n".join(lines)


__all__ = ["QualityReference", "colour_spread", "embedded_labels", "gate_summary", "quality_report",
           "real_view_figures", "unavailable", "view_figures"]
