"""Source views: the posed images a generalizable field renders a scene from, picked from any
capture nerfgen loads, checked at the boundary (one size, poses present, indices in range), and
what an encoder makes of them (:class:`SceneFeatures`, the field's conditioning).

>>> sources = SourceViews.from_capture("data/scene", [0, 3, 5])        # doctest: +SKIP
>>> image = run.render_from(sources, cameras, 0)                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfgen.cameras import Cameras


@dataclass
class SourceViews:
    """Posed images of one scene, all of one size.

    Attributes:
        images: ``[V, H, W, 3]`` float colours in [0, 1] (alpha already composited).
        cameras: ``V`` cameras of ``W x H`` pixels.
        names: where each image came from (for errors and records).
        source: the capture they came from, or "".
        indices: which of the capture's views they are (in the split read).
        bounds: ``[V, 2]`` near and far scene depth of each view when the capture stores them (LLFF).
    """

    images: Tensor
    cameras: Cameras
    names: list[str]
    source: str = ""
    indices: list[int] = dataclasses.field(default_factory=list)
    bounds: Tensor | None = None

    def __post_init__(self) -> None:
        v = len(self.cameras)
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.shape[0] != v:
            raise ValueError(f"SourceViews: expected images [{v}, H, W, 3], got {list(self.images.shape)}")
        if (self.images.shape[1], self.images.shape[2]) != (self.cameras.height, self.cameras.width):
            raise ValueError(f"SourceViews: images of {self.images.shape[2]}x{self.images.shape[1]} pixels but "
                             f"cameras of {self.cameras.width}x{self.cameras.height}")
        if len(self.names) != v:
            raise ValueError(f"SourceViews: {v} views but {len(self.names)} names")
        if not bool(torch.isfinite(self.cameras.c2w).all()):
            raise ValueError(f"{self.names[0]}: source poses must be finite numbers")

    def __len__(self) -> int:
        return len(self.cameras)

    @property
    def width(self) -> int:
        return self.cameras.width

    @property
    def height(self) -> int:
        return self.cameras.height

    def __getitem__(self, rows: Sequence[int]) -> SourceViews:
        rows = list(rows)
        return SourceViews(self.images[rows], self.cameras[rows], [self.names[i] for i in rows], self.source,
                           [self.indices[i] for i in rows] if self.indices else [],
                           None if self.bounds is None else self.bounds[rows])

    def to(self, device: torch.device | str) -> SourceViews:
        return dataclasses.replace(self, images=self.images.to(device), cameras=self.cameras.to(device))

    def resized(self, width: int, height: int) -> SourceViews:
        """The views resized to ``width x height`` (area filter when shrinking), intrinsics following."""
        if (width, height) == (self.width, self.height):
            return self
        chw = self.images.permute(0, 3, 1, 2)
        mode = "area" if width <= self.width and height <= self.height else "bilinear"
        options = {} if mode == "area" else {"align_corners": False}
        images = F.interpolate(chw, size=(height, width), mode=mode, **options)
        sx, sy = width / self.width, height / self.height
        c = self.cameras
        cameras = Cameras(c.c2w, c.fx * sx, c.fy * sy, c.cx * sx, c.cy * sy, width, height, c.distortion, c.fisheye)
        return dataclasses.replace(self, images=images.permute(0, 2, 3, 1).contiguous(), cameras=cameras)

    @classmethod
    def from_dataset(cls, dataset, indices: Sequence[int], background: Tensor | None = None) -> SourceViews:
        """Views ``indices`` of a loaded :class:`~nerfgen.data.Dataset` split, alpha composited
        over ``background`` (white unless given). One error names the capture and what is wrong:
        an index out of range, or views of different sizes (naming both files)."""
        n, indices = len(dataset), [int(i) for i in indices]
        if not indices:
            raise ValueError(f"{dataset.source}: no source views given")
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise ValueError(f"{dataset.source}: source view {bad[0]} out of range: the {dataset.split} split has "
                             f"{n} views (0 to {n - 1})")
        sizes = [tuple(int(v) for v in dataset.sizes[i]) for i in indices]
        if len(set(sizes)) > 1:
            j = next(k for k, s in enumerate(sizes) if s != sizes[0])
            first = dataset.filenames[indices[0]]
            raise ValueError(f"{dataset.filenames[indices[j]]}: source views must share one size: this one is "
                             f"{sizes[j][0]}x{sizes[j][1]}, {first} is {sizes[0][0]}x{sizes[0][1]}")
        bg = torch.ones(3) if background is None else background.float().cpu()
        images = []
        for i in indices:
            rgba = dataset.image(i).float() / 255
            images.append(rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:]))
        w, h = sizes[0]
        idx = torch.as_tensor(indices)
        cams = dataset.cameras[idx]
        cameras = Cameras(cams.c2w, cams.fx, cams.fy, cams.cx, cams.cy, w, h, cams.distortion, cams.fisheye)
        bounds = None if dataset.bounds is None else dataset.bounds[idx].float()
        names = [dataset.filenames[i] for i in indices]
        return cls(torch.stack(images), cameras, names, dataset.source, indices, bounds)

    @classmethod
    def from_capture(cls, path: str | Path, indices: Sequence[int], split: str = "train", downscale: float = 1.0,
                     background: Tensor | None = None) -> SourceViews:
        """Views ``indices`` of split ``split`` of the capture in ``path`` (any format nerfgen loads)."""
        from nerfgen.data import load_dataset

        return cls.from_dataset(load_dataset(path, split, downscale=downscale), indices, background)


@dataclass
class SceneFeatures:
    """What a generalizable field is conditioned on: one scene's source views and what the
    encoder computed from them, once per scene (:attr:`nerfgen.fields.Conditioning.views`).

    Attributes:
        cameras: ``V`` source cameras.
        images: ``[V, 3, H, W]`` the source colours.
        maps: per-view feature maps, each ``[V, C_l, h_l, w_l]`` over the whole image.
        extra: anything else a model computed for the scene (MVSNeRF's cost volume), by name.
    """

    cameras: Cameras
    images: Tensor
    maps: list[Tensor]
    extra: dict[str, Tensor] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cameras)

    def to(self, device: torch.device | str) -> SceneFeatures:
        return SceneFeatures(self.cameras.to(device), self.images.to(device), [m.to(device) for m in self.maps],
                             {k: v.to(device) for k, v in self.extra.items()})


__all__ = ["SceneFeatures", "SourceViews"]
