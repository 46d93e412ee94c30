"""Error-guided ray sampling (nerfgen/reconstruct/error_map.py): rays go where the error is, the
pixels drawn are the images' own, and a lazily decoded capture or a bad share is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfgen.config import load_config
from nerfgen.data.store import ImageStore
from nerfgen.reconstruct.config import TrainConfig
from nerfgen.reconstruct.error_map import ErrorMap, ErrorMapConfig


def store_of(images: list[np.ndarray], max_bytes: int = 0) -> ImageStore:
    sizes = np.array([[im.shape[1], im.shape[0]] for im in images])

    def decode(i: int, out: np.ndarray) -> bool:
        out[...] = images[i]
        return True

    return ImageStore(sizes, decode, max_bytes)


def coded_images() -> list[np.ndarray]:
    """Two images of different sizes (not multiples of the tile) whose pixels spell their own
    image, x and y, so a drawn pixel can be checked against where it claims to be."""
    images = []
    for i, (w, h) in enumerate([(21, 13), (10, 17)]):
        y, x = np.mgrid[0:h, 0:w]
        images.append(np.stack([np.full_like(x, i), x, y, np.full_like(x, 255)], -1).astype(np.uint8))
    return images


def test_rays_go_to_the_blocks_with_the_error_and_read_their_own_pixels():
    emap = ErrorMap(store_of(coded_images()), ErrorMapConfig(share=0.75, tile=4))
    assert emap.error.numel() == 6 * 4 + 3 * 5  # ceil(21/4) x ceil(13/4), ceil(10/4) x ceil(17/4)
    g = torch.Generator().manual_seed(0)
    # the same error everywhere but in one block: image 1's block (x 8-9, y 16), cut by both borders
    cam, px, py = torch.tensor([1]), torch.tensor([9]), torch.tensor([16])
    emap.error.fill_(1e-4)
    for _ in range(20):
        emap.update(cam, px, py, torch.tensor([0.5]))
    emap.cdf = None
    batch = emap.sample(4000, g)
    assert len(batch.cam) == 4000
    assert torch.equal(batch.rgba[:, 0].long(), batch.cam) and torch.equal(batch.rgba[:, 1].long(), batch.px)
    assert torch.equal(batch.rgba[:, 2].long(), batch.py)
    in_block = (batch.cam == 1) & (batch.px >= 8) & (batch.py == 16)
    drawn = batch.cam[1000:]  # the error-drawn share follows the uniform one
    assert drawn.numel() == 3000 and in_block[1000:].float().mean() > 0.9
    assert in_block[:1000].float().mean() < 0.05  # the uniform share stays uniform
    assert set(batch.px[in_block].tolist()) == {8, 9}  # both pixels of the cut block, none past the border
    widths = torch.tensor([21, 10])[batch.cam]
    heights = torch.tensor([13, 17])[batch.cam]
    assert bool((batch.px < widths).all() and (batch.py < heights).all())


def test_update_averages_each_block_with_its_rays():
    emap = ErrorMap(store_of(coded_images()), ErrorMapConfig(share=0.5, tile=4))
    cam, px, py = torch.tensor([0, 0, 0]), torch.tensor([0, 3, 20]), torch.tensor([0, 2, 12])
    emap.update(cam, px, py, torch.tensor([0.04, 0.07, 0.3]))
    cells = emap.cells(cam, px, py)
    assert cells[0] == cells[1] and cells[2] == emap.error.numel() - 3 * 5 - 1  # image 0's last block
    assert emap.error[cells[0]].item() == pytest.approx((0.01 + 0.04 + 0.07) / 3)
    assert emap.error[cells[2]].item() == pytest.approx((0.01 + 0.3) / 2)
    assert emap.error[1].item() == pytest.approx(0.01)


def test_state_round_trip_draws_the_same_rays():
    store = store_of(coded_images())
    a = ErrorMap(store, ErrorMapConfig(share=0.5, tile=4, refresh_every=3))
    for k in range(4):
        b = a.sample(64, torch.Generator().manual_seed(k))
        a.update(b.cam, b.px, b.py, (b.px.float() / 20) ** 2)
    tensors, draws = a.state(), a.draws
    b = ErrorMap(store, ErrorMapConfig(share=0.5, tile=4, refresh_every=3))
    b.load_state(tensors, draws)
    x, y = a.sample(64, torch.Generator().manual_seed(9)), b.sample(64, torch.Generator().manual_seed(9))
    assert torch.equal(x.px, y.px) and torch.equal(x.py, y.py) and torch.equal(x.cam, y.cam)
    with pytest.raises(ValueError, match="error map has"):
        ErrorMap(store, ErrorMapConfig(share=0.5, tile=2)).load_state(tensors, draws)


def test_a_lazy_capture_or_a_bad_share_is_one_clear_error(tmp_path):
    images = coded_images() * 4
    lazy = store_of(images, max_bytes=3 * 21 * 13 * 4)
    assert lazy.lazy
    with pytest.raises(ValueError, match="lazily.*image_memory_mb"):
        ErrorMap(lazy, ErrorMapConfig(share=0.5), "capture/transforms.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text("error_map:\n  share: 1.5\n")
    with pytest.raises(ValueError, match=r"bad.yaml.*error_map.share.*\[0, 1\]"):
        load_config(TrainConfig, bad)
