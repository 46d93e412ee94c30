r"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), AlexNet variant, as nerfstudio reports it: from weights on local disk, nothing downloaded.

Both images, in ``[0, 1]``, are mapped to ``[-1, 1]`` and by the metric's scaling layer
:math:`x' = (x - \mathrm{shift}) / \mathrm{scale}`; AlexNet's five ReLU outputs :math:`f^l` (after
conv1 ... conv5) are unit-normalised across channels, :math:`\hat f^l = f^l / (\|f^l\|_2 + 10^{-10})`,
and the distance is

.. math:: d(x, y) = \sum_l \frac{1}{H_l W_l} \sum_{h, w} \sum_c w^l_c\,(\hat f^l_{chw}(x) - \hat f^l_{chw}(y))^2

with the learned non-negative channel weights :math:`w^l` of the linear (1x1) layers.

The weights are two files, read with ``torch.load(..., weights_only=True)``:

- the backbone, torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``: ``features.0.weight``
  ``[64, 3, 11, 11]`` ... ``features.10.bias``; the classifier's keys are not used);
- the linear layers, the ``lpips`` package's ``weights/v0.1/alex.pth`` (``lin0.model.1.weight``
  ``[1, 64, 1, 1]`` ... ``lin4.model.1.weight``).

>>> weights = load_lpips_weights("alexnet-owt-7be5be79.pth", "alex.pth")   # doctest: +SKIP
>>> lpips(render, target, weights)                                          # doctest: +SKIP
0.0412
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["LpipsWeights", "load_lpips_weights", "lpips", "lpips_batch"]

SHIFT = (-0.030, -0.088, -0.188)
"""The scaling layer's shift of the ``[-1, 1]`` RGB input (lpips v0.1)."""
SCALE = (0.458, 0.448, 0.450)
"""The scaling layer's scale."""
CONVS = (  # AlexNet's feature convolutions: state-dict index, [out, in, k, k], stride, padding
    (0, (64, 3, 11, 11), 4, 2),
    (3, (192, 64, 5, 5), 1, 2),
    (6, (384, 192, 3, 3), 1, 1),
    (8, (256, 384, 3, 3), 1, 1),
    (10, (256, 256, 3, 3), 1, 1),
)
POOLED = (True, True, False, False)
"""Whether a 3x3, stride-2 max pool comes between conv ``l`` and conv ``l + 1``."""
MIN_SIDE = 31
"""Smallest image side that leaves conv5 a pixel."""
EPS = 1e-10
"""Added to each feature vector's norm before dividing (lpips' ``normalize_tensor``)."""


@dataclass
class LpipsWeights:
    """The weights LPIPS needs: AlexNet's five convolutions and the five linear layers.

    Attributes:
        convs: ``(weight [out, in, k, k], bias [out])`` of conv1 ... conv5.
        linear: ``[C_l]`` non-negative channel weights of the linear layer on each conv's output.
        files: the files they were read from (backbone, linear).
    """

    convs: list[tuple[Tensor, Tensor]]
    linear: list[Tensor]
    files: tuple[str, str] = ("", "")


def load_lpips_weights(backbone: str | Path, linear: str | Path) -> LpipsWeights:
    """Read the AlexNet backbone and the linear layers (see the module's docstring for the formats).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file is not a state dict of tensors, or lacks a tensor of the shape expected
            (the message names the file, the key and the shape).
    """
    file = _StateDict(Path(backbone), "torchvision's AlexNet state dict (alexnet-owt-7be5be79.pth)", "lin0.")
    convs = [(file.tensor(f"features.{i}.weight", shape), file.tensor(f"features.{i}.bias", shape[:1]))
             for i, shape, _, _ in CONVS]
    file = _StateDict(Path(linear), "the lpips package's linear layers (weights/v0.1/alex.pth)", "features.")
    lins = [file.tensor(f"lin{k}.model.1.weight", (1, shape[0], 1, 1)).flatten()
            for k, (_, shape, _, _) in enumerate(CONVS)]
    return LpipsWeights(convs, lins, (str(backbone), str(linear)))


class _StateDict:
    """The tensors of a ``torch.save`` file, read with one clear error for anything else.

    Args:
        path: the file.
        what: what it should be, for messages.
        other: a key prefix of the other weights file (a hint when the two are swapped).
    """

    def __init__(self, path: Path, what: str, other: str) -> None:
        self.path, self.what, self.other = path, what, other
        if not path.is_file():
            raise FileNotFoundError(f"{path}: LPIPS weights not found (expected {what})")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
            first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ValueError(f"{path}: not a torch state dict ({first}); expected {what}") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
            raise ValueError(f"{path}: expected {what}, a mapping of names to tensors; got {type(loaded).__name__}")
        self.tensors = loaded

    def tensor(self, key: str, shape: tuple[int, ...]) -> Tensor:
        """Tensor ``key`` as float32, checked to have ``shape`` and finite values."""
        dims = ", ".join(map(str, shape))
        if key not in self.tensors:
            swapped = " (are the two files swapped?)" if any(k.startswith(self.other) for k in self.tensors) else ""
            raise ValueError(f"{self.path}: expected {self.what}: no {key!r} [{dims}] in it{swapped}")
        value = self.tensors[key]
        if tuple(value.shape) != shape:
            raise ValueError(f"{self.path}: expected {self.what}: {key!r} of shape [{dims}], "
                             f"got [{', '.join(map(str, value.shape))}]")
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ValueError(f"{self.path}: {key!r} must hold finite floating-point values")
        return value.float()


def _features(x: Tensor, weights: LpipsWeights) -> list[Tensor]:
    """AlexNet's five ReLU outputs ``[B, C_l, H_l, W_l]`` of scaled images ``x [B, 3, H, W]``."""
    out = []
    for layer, ((weight, bias), (_, _, stride, padding)) in enumerate(zip(weights.convs, CONVS)):
        x = F.relu(F.conv2d(x, weight.to(x.device), bias.to(x.device), stride=stride, padding=padding))
        out.append(x)
        if layer < len(POOLED) and POOLED[layer]:
            x = F.max_pool2d(x, kernel_size=3, stride=2)
    return out


@torch.no_grad()
def lpips_batch(pred: Tensor, target: Tensor, weights: LpipsWeights) -> Tensor:
    """``[B]`` LPIPS distances of images ``pred`` and ``target`` ``[B, H, W, 3]`` in ``[0, 1]``
    (0 for equal images; larger is more different)."""
    if pred.shape != target.shape or pred.dim() != 4 or pred.shape[-1] != 3:
        raise ValueError(f"LPIPS needs two [B, H, W, 3] images of one shape, got {list(pred.shape)} and "
                         f"{list(target.shape)}")
    if min(pred.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"LPIPS needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels (AlexNet's receptive "
                         f"field), got {pred.shape[2]}x{pred.shape[1]}")
    shift = torch.tensor(SHIFT, device=pred.device).view(1, 3, 1, 1)
    scale = torch.tensor(SCALE, device=pred.device).view(1, 3, 1, 1)
    x, y = ((img.float().permute(0, 3, 1, 2) * 2 - 1 - shift) / scale for img in (pred, target))
    total = torch.zeros(pred.shape[0], device=pred.device)
    for fx, fy, w in zip(_features(x, weights), _features(y, weights), weights.linear):
        fx = fx / (fx.norm(dim=1, keepdim=True) + EPS)
        fy = fy / (fy.norm(dim=1, keepdim=True) + EPS)
        total += ((fx - fy).square() * w.to(fx.device).view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


def lpips(pred: Tensor, target: Tensor, weights: LpipsWeights) -> float:
    """LPIPS distance of two ``[H, W, 3]`` images in ``[0, 1]`` (see :func:`lpips_batch`)."""
    return float(lpips_batch(pred[None], target[None], weights)[0])
