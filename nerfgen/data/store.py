"""The pixels of a capture: decoded once into one flat buffer, or decoded lazily in rotating subsets.

A capture of a few hundred phone photos does not fit in RAM as one ``[n, H, W, 4]`` tensor (300
images of 1920x1080 are 2.5 GB of RGBA). :class:`ImageStore` holds each image at its own size
and hands training random pixels; past a memory budget it keeps only a subset of images decoded
and swaps the subset every ``refresh_every`` batches (nerfstudio's ``num_images_to_sample_from``),
decoding the next subset on a background thread while the current one trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["ImageStore", "PixelBatch"]

Decode = Callable[[int, np.ndarray], bool]
"""``decode(i, out [H_i, W_i, 4] uint8) -> has_alpha``: writes image ``i`` into ``out``."""


@dataclass
class PixelBatch:
    """Random pixels: ``cam [m]`` image index, ``px``/``py [m]`` integer pixel, ``rgba [m, 4]`` uint8."""

    cam: Tensor
    px: Tensor
    py: Tensor
    rgba: Tensor


def _workers(n: int) -> int:
    import os

    return max(1, min(n, 8, os.cpu_count() or 1))


class _Pool:
    """Some images decoded into one flat ``[pixels, 4]`` uint8 buffer, with per-image offsets."""

    def __init__(self, indices: Sequence[int], sizes: np.ndarray, decode: Decode) -> None:
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)  # [k] image ids
        counts = torch.as_tensor(sizes[list(indices)].prod(1), dtype=torch.long)  # [k]
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])  # [k + 1]
        self.widths = torch.as_tensor(sizes[list(indices), 0], dtype=torch.long)
        self.heights = torch.as_tensor(sizes[list(indices), 1], dtype=torch.long)
        self.pixels = torch.empty(int(self.offsets[-1]), 4, dtype=torch.uint8)
        buf = self.pixels.numpy()

        def one(j: int) -> bool:
            lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
            return decode(int(self.indices[j]), buf[lo:hi].reshape(int(self.heights[j]), int(self.widths[j]), 4))

        with ThreadPoolExecutor(max_workers=_workers(len(indices))) as pool:
            self.alpha = list(pool.map(one, range(len(indices))))
        self.slot = {int(i): j for j, i in enumerate(self.indices.tolist())}

    def image(self, slot: int) -> Tensor:
        lo, hi = int(self.offsets[slot]), int(self.offsets[slot + 1])
        return self.pixels[lo:hi].view(int(self.heights[slot]), int(self.widths[slot]), 4)

    def sample(self, n: int, generator: torch.Generator) -> PixelBatch:
        flat = torch.randint(0, self.pixels.shape[0], (n,), generator=generator)  # uniform over pixels
        slot = torch.searchsorted(self.offsets, flat, right=True) - 1
        local = flat - self.offsets[slot]
        w = self.widths[slot]
        return PixelBatch(self.indices[slot], local % w, local // w, self.pixels[flat])


class ImageStore:
    """RGBA images of one split, each at its own size.

    Args:
        sizes: ``[n, 2]`` (width, height) of each image as stored.
        decode: writes image ``i`` into a ``[H_i, W_i, 4]`` uint8 array and says whether it had alpha.
        max_bytes: memory budget for decoded pixels; a split above it is decoded lazily, a subset
            of images at a time (0: no limit).
        refresh_every: lazy stores: batches drawn from one subset before the next is swapped in.
    """

    def __init__(self, sizes: np.ndarray, decode: Decode, max_bytes: int = 0, refresh_every: int = 256) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
        self._decode, self.refresh_every, self._max_bytes = decode, refresh_every, max_bytes
        per_image = self.sizes.prod(1) * 4
        self.lazy = bool(max_bytes) and int(per_image.sum()) > max_bytes
        n = len(self.sizes)
        if not self.lazy:
            self._pool = _Pool(range(n), self.sizes, decode)
            self.has_alpha = any(self._pool.alpha)
            self.subset_size = n
        else:
            # Largest subset that fits twice (the one training + the one being decoded).
            self.subset_size = max(1, min(n, int(max_bytes // (2 * int(per_image.max())))))
            first = _Pool(range(self.subset_size), self.sizes, decode)
            self.has_alpha = any(first.alpha)  # probed on the first subset; formats keep one mode per capture
            self._pool, self._next, self._batches = first, None, 0
            self._executor = ThreadPoolExecutor(max_workers=1)
            self._subset_rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def uniform(self) -> bool:
        """Whether every image has the same size."""
        return bool((self.sizes == self.sizes[0]).all())

    def __getitem__(self, i: int) -> Tensor:
        """Image ``i`` ``[H_i, W_i, 4]`` uint8 (decoded now when a lazy store does not hold it)."""
        slot = self._pool.slot.get(int(i))
        if slot is not None:
            return self._pool.image(slot)
        w, h = self.sizes[int(i)]
        out = np.empty((h, w, 4), dtype=np.uint8)
        self._decode(int(i), out)
        return torch.from_numpy(out)

    def dense(self) -> Tensor:
        """All images as one ``[n, H, W, 4]`` tensor (a view when the store holds them all)."""
        if not self.uniform:
            sizes = ", ".join(f"{w}x{h}" for w, h in np.unique(self.sizes, axis=0)[:4])
            raise ValueError(f"the images have different sizes ({sizes}): index them one by one (dataset.image(i))")
        w, h = self.sizes[0]
        if not self.lazy:
            return self._pool.pixels.view(len(self), int(h), int(w), 4)
        return torch.stack([self[i] for i in range(len(self))])

    def sample(self, n: int, generator: torch.Generator) -> PixelBatch:
        """``n`` pixels uniformly over the held images' pixels (all images unless lazy)."""
        if self.lazy:
            self._rotate()
        return self._pool.sample(n, generator)

    def pixels_at(self, cam: Tensor, px: Tensor, py: Tensor) -> Tensor:
        """``[m, 4]`` uint8 pixels ``px, py`` of images ``cam`` (a store that holds every image)."""
        if self.lazy:
            raise ValueError("pixels_at needs every image in memory; this store decodes lazily")
        pool = self._pool
        return pool.pixels[pool.offsets[cam] + py * pool.widths[cam] + px]

    def _rotate(self) -> None:
        self._batches += 1
        if self._next is None:
            self._next = self._executor.submit(self._next_pool)
        if self._batches >= self.refresh_every:  # waits for the decode if it is behind: runs stay repeatable
            self._pool, self._next, self._batches = self._next.result(), None, 0

    def _next_pool(self) -> _Pool:
        chosen = np.sort(self._subset_rng.choice(len(self), self.subset_size, replace=False))
        return _Pool(chosen.tolist(), self.sizes, self._decode)

    def subset(self, indices: Sequence[int]) -> ImageStore:
        """A store of images ``indices`` of this one (decoded again, under the same budget)."""
        chosen = [int(i) for i in indices]
        budget = self._max_bytes
        return ImageStore(self.sizes[chosen], lambda i, out: self._decode(chosen[i], out), budget, self.refresh_every)

