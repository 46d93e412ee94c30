"""LPIPS (AlexNet) from local weight files: zero for equal images, growing with blur and noise,
equal to a reference written here from the paper's equations, and one clear error per bad file.

The weights are random, written in the two real formats (torchvision's AlexNet state dict and the
lpips package's linear layers), so nothing is downloaded.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nerfgen.reconstruct.lpips import load_lpips_weights, lpips, lpips_batch

CONV_SHAPES = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
CHANNELS = (64, 192, 384, 256, 256)


def backbone_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random AlexNet in torchvision's state-dict layout (He-initialised convolutions, plus a
    classifier key the metric does not use)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, shape in CONV_SHAPES.items():
        fan_in = shape[1] * shape[2] * shape[3]
        state[f"features.{i}.weight"] = torch.randn(shape, generator=g) * math.sqrt(2 / fan_in)
        state[f"features.{i}.bias"] = torch.randn(shape[0], generator=g) * 0.01
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


def linear_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """Random non-negative linear layers in the lpips package's layout."""
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(CHANNELS)}


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lpips")
    torch.save(backbone_state(), root / "alexnet-owt-7be5be79.pth")
    torch.save(linear_state(), root / "alex.pth")
    return root / "alexnet-owt-7be5be79.pth", root / "alex.pth"


def pattern_image(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """``[h, w, 3]`` in [0, 1]: gradients, a disc and stripes (edges and texture to lose)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = ((x - 0.4) ** 2 + (y - 0.5) ** 2 < 0.06).float()
    stripes = (torch.sin(x * 40) > 0).float()
    return torch.stack([0.2 + 0.6 * x, 0.8 * disc + 0.1, 0.3 * stripes + 0.5 * y], -1).clamp(0, 1)


def blurred(img: torch.Tensor, k: int) -> torch.Tensor:
    kernel = torch.full((3, 1, k, k), 1.0 / k**2)
    padded = F.pad(img.permute(2, 0, 1)[None], [k // 2] * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=3)[0].permute(1, 2, 0)


@torch.no_grad()
def reference_lpips(x: torch.Tensor, y: torch.Tensor, backbone: dict, linear: dict) -> float:
    """Zhang et al. 2018 in float64: inputs to [-1, 1] and through the scaling layer, AlexNet's five
    ReLU outputs, each unit-normalised over channels, squared differences weighted by the linear
    layer's channel weights, averaged over space, summed over layers."""
    net = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    ).double()
    net.load_state_dict({k[len("features."):]: v.double() for k, v in backbone.items() if k.startswith("features.")})
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64)

    def taps(img):
        h = ((img.double() * 2 - 1 - shift) / scale).permute(2, 0, 1)[None]
        out = []
        for index, layer in enumerate(net):
            h = layer(h)
            if index in (1, 4, 7, 9, 11):  # the ReLUs after conv1 ... conv5
                out.append(h[0])  # [C, H, W]
        return out

    total = 0.0
    for layer, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        w = linear[f"lin{layer}.model.1.weight"].double().flatten()
        c, hh, ww = fx.shape
        for i in range(hh):
            for j in range(ww):
                a = fx[:, i, j] / (torch.sqrt((fx[:, i, j] ** 2).sum()) + 1e-10)
                b = fy[:, i, j] / (torch.sqrt((fy[:, i, j] ** 2).sum()) + 1e-10)
                total += float((w * (a - b) ** 2).sum()) / (hh * ww)
    return total


def test_identical_images_are_at_distance_zero(weight_files):
    weights = load_lpips_weights(*weight_files)
    img = pattern_image()
    assert lpips(img, img.clone(), weights) == 0.0


def test_distance_grows_with_blur_and_noise(weight_files):
    weights = load_lpips_weights(*weight_files)
    img = pattern_image()
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(img.shape, generator=g)
    by_noise = [lpips(img, (img + s * noise).clamp(0, 1), weights) for s in (0.02, 0.08, 0.3)]
    by_blur = [lpips(img, blurred(img, k), weights) for k in (3, 5, 9)]
    assert 0 < by_noise[0] < by_noise[1] < by_noise[2], by_noise
    assert 0 < by_blur[0] < by_blur[1] < by_blur[2], by_blur


def test_matches_the_papers_equations(weight_files):
    weights = load_lpips_weights(*weight_files)
    g = torch.Generator().manual_seed(4)
    x = pattern_image(40, 56)
    y = (blurred(x, 3) + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    expected = reference_lpips(x, y, backbone_state(), linear_state())
    assert expected > 0
    assert lpips(x, y, weights) == pytest.approx(expected, rel=1e-4)
    batch = lpips_batch(torch.stack([x, y]), torch.stack([y, y]), weights)  # a batch: per image
    assert batch.shape == (2,) and batch[0] == pytest.approx(expected, rel=1e-4) and batch[1] == 0


def test_images_too_small_or_mismatched_are_one_error(weight_files):
    weights = load_lpips_weights(*weight_files)
    with pytest.raises(ValueError, match="at least 31x31 pixels.*got 40x16"):
        lpips(torch.rand(16, 40, 3), torch.rand(16, 40, 3), weights)
    with pytest.raises(ValueError, match=r"two \[B, H, W, 3\] images of one shape"):
        lpips(torch.rand(32, 32, 3), torch.rand(32, 33, 3), weights)


def _save(path, value):
    torch.save(value, path)
    return path


def test_bad_weight_files_are_one_error_naming_the_file(weight_files, tmp_path):
    backbone, linear = weight_files
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'nope.pth'}: LPIPS weights not found"):
        load_lpips_weights(tmp_path / "nope.pth", linear)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(backbone.read_bytes()[:4000])
    for bad in (garbage, truncated, _save(tmp_path / "object.pth", {"x": torch.nn.Linear(1, 1)})):
        with pytest.raises(ValueError, match=f"^{bad}: not a torch state dict .*expected torchvision's AlexNet"):
            load_lpips_weights(bad, linear)
    with pytest.raises(ValueError, match="a mapping of names to tensors; got list"):
        load_lpips_weights(_save(tmp_path / "list.pth", [torch.zeros(1)]), linear)

    state = backbone_state()
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    with pytest.raises(ValueError) as info:
        load_lpips_weights(_save(tmp_path / "shape.pth", state), linear)
    assert str(info.value) == (f"{tmp_path / 'shape.pth'}: expected torchvision's AlexNet state dict "
                               "(alexnet-owt-7be5be79.pth): 'features.3.weight' of shape [192, 64, 5, 5], "
                               "got [192, 64, 3, 3]")
    lin = linear_state()
    del lin["lin4.model.1.weight"]
    with pytest.raises(ValueError, match=r"expected the lpips package's linear layers \(weights/v0.1/alex.pth\): "
                                         r"no 'lin4.model.1.weight' \[1, 256, 1, 1\] in it$"):
        load_lpips_weights(backbone, _save(tmp_path / "lin.pth", lin))
    with pytest.raises(ValueError, match=r"no 'features.0.weight' .*\(are the two files swapped\?\)"):
        load_lpips_weights(linear, backbone)
    lin = linear_state()
    lin["lin2.model.1.weight"][0, 5] = float("nan")
    with pytest.raises(ValueError, match="'lin2.model.1.weight' must hold finite"):
        load_lpips_weights(backbone, _save(tmp_path / "nan.pth", lin))
