"""Objects in the images of an embedded set, found the way a person finds them: whatever is not
the set's known backdrop (clevr's lit grey ground and its shadows, the objects set's white),
split where the colour changes, and measured (count, area, colour, colour fringes at the borders).

The same segmentation runs on real and generated images, so every statistic is compared like
with like (:mod:`nerfgen.gan.gate`). Rules, per pixel of an image in [0, 1]:

1. the backdrop is the set's (:func:`backdrop_of`), shifted by the median of the image's one-pixel
   frame (clamped to :data:`BACKDROP_DRIFT`): a generated ground a shade off is still ground;
2. a pixel is an object's when it differs from the backdrop by more than :data:`BACKDROP_TOLERANCE`
   in some channel, unless it is a shadow: neutral (chroma at most :data:`NEUTRAL_CHROMA`) with a
   brightness ratio to the backdrop inside :data:`SHADOW_BAND` of the set's shadow ratio, or the
   antialiased rim of such a shadow (neutral, between shadow and ground, touching one);
3. neighbouring object pixels (4-connected) belong to one object while their chromaticity
   ``rgb / sum(rgb)`` differs by less than :data:`CHROMATICITY_STEP` (L1): a red cube beside a blue
   sphere are two objects, the faces of one cube (the same hue, shaded apart) one;
4. pieces smaller than :data:`MIN_AREA` of the image or without an interior pixel (all of an
   antialiased rim touches something else) join the object within :data:`FRAGMENT_REACH` pixels,
   or are dropped.

Grey objects are the hard case on clevr: their top faces are within 0.05 of the ground and their
unlit sides as dark as a shadow, so part of them is lost (on real and generated images alike;
``tests/test_gan_gate.py`` measures the recall against the labels' masks).

>>> backdrop = backdrop_of({"set": "objects"})
>>> image = np.ones((16, 16, 3), np.float32); image[4:10, 4:10] = (0.8, 0.1, 0.1)
>>> table = measure(torch.from_numpy(image).permute(2, 0, 1)[None], backdrop)
>>> table.count.tolist(), table.area.tolist()
([1], [36.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components
from torch import Tensor

BACKDROP_TOLERANCE = 0.035
"""Largest channel difference from the backdrop that is still backdrop (9 of 255)."""
BACKDROP_DRIFT = 0.08
"""Most the backdrop of one image may differ from the set's (the frame's median is clamped to it)."""
NEUTRAL_CHROMA = 0.08
"""Largest ``max(rgb) - min(rgb)`` of a grey pixel (a shadow is grey)."""
SHADOW_BAND = (0.06, 0.05)
"""Brightness ratios to the backdrop within ``(ratio - a, ratio + b)`` of the shadow ratio are shadow."""
CHROMATICITY_STEP = 0.2
"""Largest L1 change of ``rgb / max(sum(rgb), 0.15)`` between neighbours of one object."""
MIN_AREA = 0.006
"""Smallest object, as a fraction of the image (25 px at 64 x 64, 6 px at 32 x 32)."""
FRAGMENT_REACH = 2
"""Pixels a smaller piece may lie from the object it joins."""
EDGE_REACH = 2
"""Pixels on either side of an object's border over which :func:`edge_chroma` sums."""


@dataclass(frozen=True)
class Backdrop:
    """What an embedded set shows where there is no object.

    Attributes:
        colour: ``[3]`` the lit ground (clevr) or the empty background (objects), in [0, 1].
        shadow_ratio: brightness of the ground in shadow over the lit ground; None: no shadows.
    """

    colour: tuple[float, float, float]
    shadow_ratio: float | None = None


def backdrop_of(labels: dict) -> Backdrop:
    """The :class:`Backdrop` of the set a ``labels.json`` describes (``labels["set"]``)."""
    from nerfgen.scenes.gan_sets import set_backdrop

    name = labels.get("set") if isinstance(labels, dict) else None
    lit, shadow = set_backdrop(str(name))
    ratio = None if shadow is None else float(np.mean(shadow) / np.mean(lit))
    return Backdrop(tuple(float(c) for c in lit), ratio)


@dataclass
class ObjectTable:
    """Objects found in ``B`` images of side ``size``.

    Attributes:
        image: ``[N]`` which image each object is in.
        area: ``[N]`` its pixels.
        colour: ``[N, 3]`` mean colour of its interior (its pixels whose 4 neighbours are its too;
            all its pixels when it has no interior).
        count: ``[B]`` objects per image.
        edge_chroma: ``[B]`` chroma of the colour gradient across the objects' borders per pixel of
            border (NaN where an image has no object): see :func:`edge_chroma`.
        edge_fringe: ``[B]`` the part of it the objects' own colours do not explain (colour
            fringes): see :func:`edge_fringe`.
        backdrop_shift: ``[B]`` largest channel difference between the median of the image's frame
            and the set's backdrop (before clamping): a drifting ground.
        size: the images' side.
    """

    image: np.ndarray
    area: np.ndarray
    colour: np.ndarray
    count: np.ndarray
    edge_chroma: np.ndarray
    edge_fringe: np.ndarray
    backdrop_shift: np.ndarray
    size: int

    def head(self, n: int) -> ObjectTable:
        """The objects of the first ``n`` images."""
        rows = self.image < n
        return ObjectTable(self.image[rows], self.area[rows], self.colour[rows], self.count[:n], self.edge_chroma[:n],
                           self.edge_fringe[:n], self.backdrop_shift[:n], self.size)


def _image_backdrop(image: np.ndarray, backdrop: Backdrop) -> tuple[np.ndarray, float]:
    """``[3]`` this image's backdrop and its shift from the set's."""
    frame = np.concatenate([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])  # [F, 3]
    known = np.asarray(backdrop.colour, dtype=np.float32)
    shift = np.median(frame, axis=0) - known
    return known + np.clip(shift, -BACKDROP_DRIFT, BACKDROP_DRIFT), float(np.abs(shift).max())


def object_pixels(image: np.ndarray, backdrop: Backdrop) -> tuple[np.ndarray, float]:
    """``[H, W]`` bool: the pixels of ``image [H, W, 3]`` that belong to objects (rules 1-2 of the
    module docstring), and the backdrop shift."""
    ground, shift = _image_backdrop(image, backdrop)
    differs = np.abs(image - ground).max(-1) > BACKDROP_TOLERANCE
    if backdrop.shadow_ratio is None:
        return differs, shift
    neutral = image.max(-1) - image.min(-1) <= NEUTRAL_CHROMA
    ratio = image.mean(-1) / max(float(ground.mean()), 1e-3)
    s = backdrop.shadow_ratio
    core = neutral & (ratio > s - SHADOW_BAND[0]) & (ratio < s + SHADOW_BAND[1])
    rim = neutral & (ratio > s) & (ratio < 1.0) & ndimage.binary_dilation(core)
    return differs & ~core & ~rim, shift


def _colour_components(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[H, W]`` int: 4-connected components of ``mask`` whose neighbours differ in chromaticity by
    less than :data:`CHROMATICITY_STEP` (-1 outside the mask)."""
    h, w = mask.shape
    chroma = image / np.maximum(image.sum(-1, keepdims=True), 0.15)
    index = np.arange(h * w).reshape(h, w)
    rows, cols = [], []
    for a, b in (((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
                 ((slice(0, -1), slice(None)), (slice(1, None), slice(None)))):
        joined = mask[a] & mask[b] & (np.abs(chroma[a] - chroma[b]).sum(-1) < CHROMATICITY_STEP)
        rows.append(index[a][joined])
        cols.append(index[b][joined])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(h * w, h * w))
    labels = connected_components(graph, directed=False)[1].reshape(h, w)
    return np.where(mask, labels, -1)


def _interior(labels: np.ndarray) -> np.ndarray:
    """``labels`` where all four neighbours carry the same label, else 0 (outside the image counts as 0)."""
    h, w = labels.shape
    padded = np.pad(labels, 1)
    inner = labels.copy()
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        inner[padded[dy:dy + h, dx:dx + w] != labels] = 0
    return inner


def segment(image: np.ndarray, backdrop: Backdrop) -> tuple[np.ndarray, float]:
    """``[H, W]`` int32 object labels of ``image [H, W, 3]`` in [0, 1] (0: backdrop, 1..K: objects;
    the module docstring's rules) and the backdrop shift. A piece is an object when it has
    :data:`MIN_AREA` and an interior pixel (an antialiased rim along an edge has none)."""
    mask, shift = object_pixels(image, backdrop)
    parts = _colour_components(image, mask) + 1  # 0 outside the mask
    sizes = np.bincount(parts.ravel())
    inner = np.bincount(_interior(parts).ravel(), minlength=len(sizes))
    big = np.flatnonzero((sizes >= max(3.0, MIN_AREA * mask.size)) & (inner > 0))
    big = big[big > 0]
    lookup = np.zeros(len(sizes), dtype=np.int32)  # part -> object label
    lookup[big] = np.arange(1, len(big) + 1, dtype=np.int32)
    labels = lookup[parts]
    small = mask & (labels == 0)
    if small.any() and len(big):
        reach = labels
        for _ in range(FRAGMENT_REACH):
            reach = np.where(reach > 0, reach, ndimage.grey_dilation(reach, size=3))
        labels = np.where(small, reach, labels)
    return labels, shift


def _border(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The pixels within :data:`EDGE_REACH` of the border of ``mask``, and the border's length (the
    mask's pixels with a neighbour outside)."""
    length = int((mask & ~ndimage.binary_erosion(mask)).sum())
    band = ndimage.binary_dilation(mask, iterations=EDGE_REACH) & ~ndimage.binary_erosion(mask, iterations=EDGE_REACH)
    return band, length


def _gradients(image: np.ndarray) -> np.ndarray:
    """``[H, W, 2, 3]`` the colour gradient (central differences) along x and y."""
    gy, gx = np.gradient(image, axis=(0, 1))
    return np.stack([gx, gy], -2)


def edge_chroma(image: np.ndarray, mask: np.ndarray) -> float:
    r"""Chroma of the colour gradient across the border of ``mask``, per pixel of border length.

    At each pixel the gradient :math:`J = \partial(r, g, b) / \partial(x, y)` less its grey part
    (the channel mean) has the norm :math:`\|J - \bar J\|_F`; summed over the pixels within
    :data:`EDGE_REACH` of the border and divided by the border's length, it is the chroma an edge
    carries across, however blurred: a clean edge between an object and the grey ground carries the
    object's colour change; dull objects carry less. NaN without a border."""
    band, length = _border(mask)
    if not length:
        return float("nan")
    grads = _gradients(image)
    chroma = grads - grads.mean(-1, keepdims=True)
    return float(np.sqrt((chroma ** 2).sum((-2, -1)))[band].sum() / length)


def edge_fringe(image: np.ndarray, labels: np.ndarray, colours: np.ndarray) -> float:
    r"""Colour fringes: the part of the colour gradient across object borders that neither the
    object's own colour nor grey explains, per pixel of border length.

    Mixing an object of colour :math:`c` with the grey ground (antialiasing, blur) and shading it
    change the colour only within the plane spanned by :math:`c` and grey :math:`(1, 1, 1)`; the
    gradient's component out of that plane (for a grey object: out of the grey axis), summed over
    the pixels within :data:`EDGE_REACH` of the borders (each pixel taking the nearest object's
    ``colours [K, 3]``) and divided by the borders' length, is what misaligned channels and
    coloured halos add. NaN without objects."""
    mask = labels > 0
    band, length = _border(mask)
    if not length:
        return float("nan")
    nearest = labels
    for _ in range(EDGE_REACH):
        nearest = np.where(nearest > 0, nearest, ndimage.grey_dilation(nearest, size=3))
    grey = np.full(3, 3 ** -0.5)
    hue = colours - (colours @ grey)[:, None] * grey  # [K, 3] each colour less its grey part
    norm = np.linalg.norm(hue, axis=1, keepdims=True)
    hue = np.where(norm > 0.02, hue / np.maximum(norm, 1e-9), 0.0)
    pick = band & (nearest > 0)
    grads = _gradients(image)[pick]  # [n, 2, 3]
    axis = hue[nearest[pick] - 1][:, None]  # [n, 1, 3]
    off = grads - (grads @ grey)[..., None] * grey - (grads * axis).sum(-1, keepdims=True) * axis
    return float(np.sqrt((off ** 2).sum((-2, -1))).sum() / length)


def _interior_colours(image: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """``[count, 3]`` mean colour of each object's interior (all of it when it has none)."""
    inner = _interior(labels)
    has = np.zeros(count + 1, dtype=bool)
    has[np.unique(inner[inner > 0])] = True
    use = np.where(has[labels], inner, labels)
    ids = np.arange(1, count + 1)
    return np.stack([ndimage.mean(image[..., c], use, ids) for c in range(3)], -1)


def as_images(images: Tensor | np.ndarray) -> np.ndarray:
    """``[B, H, W, 3]`` float32 in [0, 1] from float ``[B, 3, H, W]`` in [0, 1] or uint8 ``[B, H, W, 3]``."""
    if isinstance(images, Tensor):
        images = images.detach().cpu()
        if images.dtype == torch.uint8:
            return images.numpy().astype(np.float32) / 255.0
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W] in [0, 1], got {list(images.shape)}")
        return images.permute(0, 2, 3, 1).float().clamp(0, 1).numpy()
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [B, H, W, 3], got {images.dtype} {list(images.shape)}")
    return images.astype(np.float32) / 255.0


def measure(images: Tensor | np.ndarray, backdrop: Backdrop, keep_labels: bool = False
            ) -> ObjectTable | tuple[ObjectTable, np.ndarray]:
    """Segment ``images`` (see :func:`as_images`) and measure their objects.

    Returns:
        the :class:`ObjectTable`, and with ``keep_labels`` the label maps ``[B, H, W]`` too.
    """
    pixels = as_images(images)
    rows, areas, colours, counts, chroma, fringe, shifts, maps = [], [], [], [], [], [], [], []
    for b, image in enumerate(pixels):
        labels, shift = segment(image, backdrop)
        k = int(labels.max())
        ids = np.arange(1, k + 1)
        rows.append(np.full(k, b))
        areas.append(ndimage.sum(np.ones_like(labels), labels, ids) if k else np.zeros(0))
        colours.append(_interior_colours(image, labels, k) if k else np.zeros((0, 3)))
        counts.append(k)
        chroma.append(edge_chroma(image, labels > 0))
        fringe.append(edge_fringe(image, labels, colours[-1]))
        shifts.append(shift)
        if keep_labels:
            maps.append(labels)
    table = ObjectTable(np.concatenate(rows).astype(np.int64), np.concatenate(areas).astype(np.float64),
                        np.concatenate(colours), np.asarray(counts), np.asarray(chroma), np.asarray(fringe),
                        np.asarray(shifts),
                        int(pixels.shape[1]))
    return (table, np.stack(maps)) if keep_labels else table


__all__ = ["Backdrop", "ObjectTable", "as_images", "backdrop_of", "edge_chroma", "edge_fringe", "measure",
           "object_pixels",
           "segment"]
