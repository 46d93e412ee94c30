"""Where a generalizable model's training scenes come from: procedural scenes rendered by nerfgen
without end (:class:`ProceduralScenes`), or a folder of captures (:class:`CaptureCollection`).

Both hold :class:`TrainingScene` s and hand out one at a time (:meth:`sample`); the procedural
pool swaps its oldest scene for a new one every ``refresh_every`` steps, as a pure function of
the step, so a resumed run sees the very scenes it would have seen.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nerfgen.cameras import Cameras
from nerfgen.generalize.sources import SourceViews
from nerfgen.scenes.multiview import MultiViewConfig, MultiViewScene, SceneSpec, render_scene


@dataclass
class TrainingScene:
    """Posed views of one scene (one size), colours composited on the background.

    Attributes:
        images: ``[V, H, W, 3]`` uint8.
        cameras: ``V`` cameras.
        name: where it came from.
    """

    images: Tensor
    cameras: Cameras
    name: str

    def __len__(self) -> int:
        return len(self.cameras)

    def views(self, rows: Tensor) -> SourceViews:
        """Views ``rows`` as source views (colours in [0, 1])."""
        rows = rows.tolist()
        return SourceViews(self.images[rows].float() / 255, self.cameras[rows], [f"{self.name}:{i}" for i in rows],
                           self.name, rows)

    @classmethod
    def from_multiview(cls, scene: MultiViewScene, name: str, background: Tensor) -> TrainingScene:
        rgba = torch.from_numpy(scene.images).float() / 255
        rgb = rgba[..., :3] * rgba[..., 3:] + background * (1 - rgba[..., 3:])
        n, size = len(scene.images), scene.size
        c2w = torch.from_numpy(scene.c2w[:, :3, :4]).float()
        f = torch.full((n,), scene.focal)
        c = torch.full((n,), size / 2)
        return cls((rgb * 255 + 0.5).byte(), Cameras(c2w, f, f.clone(), c, c.clone(), size, size), name)

    @classmethod
    def from_dataset(cls, dataset, background: Tensor) -> TrainingScene:
        """Every view of a loaded capture split (they must share one size)."""
        views = SourceViews.from_dataset(dataset, range(len(dataset)), background)
        return cls((views.images * 255 + 0.5).byte(), views.cameras, dataset.source)


class ProceduralScenes:
    """A pool of ``pool`` procedural training scenes; scene ``i`` is ``SceneSpec(seed, "train", i)``.

    At step ``s`` the pool holds scenes ``n(s) - pool ... n(s) - 1``, ``n(s) = pool + s // refresh_every``
    (a fixed pool of the first ``pool`` scenes when ``refresh_every`` is 0).
    """

    def __init__(self, config: MultiViewConfig, seed: int, pool: int, refresh_every: int, background: Tensor) -> None:
        self.config, self.seed, self.size, self.refresh_every = config, seed, pool, refresh_every
        self.background = background
        self.scenes: dict[int, TrainingScene] = {}

    def count(self, step: int) -> int:
        """Scenes drawn up to ``step`` (the pool holds the last ``pool`` of them)."""
        return self.size + (step // self.refresh_every if self.refresh_every > 0 else 0)

    def advance(self, step: int) -> None:
        """Bring the pool to what it holds at ``step`` (rendering the scenes it lacks)."""
        end = self.count(step)
        wanted = range(end - self.size, end)
        for i in [i for i in self.scenes if i not in wanted]:
            del self.scenes[i]
        for i in wanted:
            if i not in self.scenes:
                scene = render_scene(SceneSpec(self.seed, "train", i), self.config)
                self.scenes[i] = TrainingScene.from_multiview(scene, f"procedural:{i} ({scene.description})",
                                                              self.background)

    def sample(self, generator: torch.Generator) -> TrainingScene:
        keys = sorted(self.scenes)
        return self.scenes[keys[int(torch.randint(len(keys), (1,), generator=generator))]]

    @property
    def description(self) -> str:
        return "procedural"


class OneScene:
    """One capture's training views as the only scene (fine-tuning)."""

    def __init__(self, scene: TrainingScene) -> None:
        self.scene = scene

    def advance(self, step: int) -> None:
        return None

    def sample(self, generator: torch.Generator) -> TrainingScene:
        return self.scene

    @property
    def description(self) -> str:
        return self.scene.name


def collection_folders(folder: str | Path) -> list[Path]:
    """The capture folders directly inside ``folder`` (sorted), or one error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder of captures")
    found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ValueError(f"{folder}: expected a folder of capture folders (one scene each), found none")
    return found


class CaptureCollection:
    """Every capture in a folder (any format nerfgen loads) as a training scene, each loaded
    whole (split ``all``) with its longest side shrunk to ``size``."""

    def __init__(self, folder: str | Path, size: int, background: Tensor) -> None:
        from nerfgen.data import DatasetError, load_dataset

        self.folder, self.scenes = str(folder), []
        for path in collection_folders(folder):
            try:
                probe = load_dataset(path, "all")
            except DatasetError as exc:
                print(f"nerfgen: skipping {path}: {exc}", file=sys.stderr)
                continue
            side = max(probe.cameras.width, probe.cameras.height)
            dataset = load_dataset(path, "all", downscale=max(1.0, side / size))
            self.scenes.append(TrainingScene.from_dataset(dataset, background))
        if not self.scenes:
            raise ValueError(f"{folder}: none of its folders is a capture nerfgen loads")

    def advance(self, step: int) -> None:
        return None

    def sample(self, generator: torch.Generator) -> TrainingScene:
        return self.scenes[int(torch.randint(len(self.scenes), (1,), generator=generator))]

    @property
    def description(self) -> str:
        return self.folder


def draw_sources(n_views: int, low: int, high: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A random split of ``n_views`` views into ``k`` sources (``low <= k <= high``, leaving at
    least one target) and the targets; a scene of one view is its own source and target."""
    if n_views == 1:
        return torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long)
    high = min(high, n_views - 1)
    k = int(torch.randint(min(low, high), high + 1, (1,), generator=generator))
    order = torch.randperm(n_views, generator=generator)
    return order[:k], order[k:]


__all__ = ["CaptureCollection", "OneScene", "ProceduralScenes", "TrainingScene", "collection_folders", "draw_sources"]
