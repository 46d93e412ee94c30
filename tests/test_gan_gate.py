"""The quality gate of GAN samples on the embedded sets: the segmentation against the labels' own
masks, the palette against real objects, the gate passing real images against real images and
failing deliberately broken generators (fringes, darkened or hue-turned colours, blur, copies, one
image repeated)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfgen.gan.data import ImageCollection
from nerfgen.gan.gate import BROKEN_KINDS, GATE, Bound, Palette, broken_images, gate
from nerfgen.gan.quality import QualityReference, colour_spread
from nerfgen.gan.segment import backdrop_of, edge_fringe, measure, segment

CLEVR_IMAGES = 240  # 120 held out: two halves of 60 for the reference and the floor
OBJECT_IMAGES = 320  # 160 held out: halves of 80 (at 40, brightness alone drifts to 1.23 on seed 3)


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    from nerfgen.scenes.gan_sets import render_clevr

    root = render_clevr(tmp_path_factory.mktemp("gate") / "clevr", CLEVR_IMAGES, 64, seed=3, workers=2)
    data = ImageCollection.from_folder(root, 64, held_out=0.5)
    return data, QualityReference(data, 60)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    from nerfgen.scenes.gan_sets import render_objects

    root = render_objects(tmp_path_factory.mktemp("gate") / "objects", OBJECT_IMAGES, 32, seed=3, workers=2)
    data = ImageCollection.from_folder(root, 32, held_out=0.5)
    return data, QualityReference(data, 80)


def _real(data: ImageCollection, start: int, count: int) -> torch.Tensor:
    return (data.images_at(data.held_out[start:start + count]) + 1) * 0.5


@pytest.mark.parametrize("name", ["clevr", "objects"])
def test_segmentation_finds_the_labelled_objects(name, clevr, objects):
    """Against the labels' own masks: clevr's coloured objects are found whole, grey ones in part
    (top faces within 0.05 of the ground, unlit sides as dark as shadows); counts are right unless
    two objects of one colour touch."""
    from nerfgen.scenes.gan_sets import object_masks

    data, reference = clevr if name == "clevr" else objects
    entries = reference.labels["images"][:60]
    images = torch.from_numpy(np.stack([data.images[data.files.index(data.root / e["file"])] for e in entries]))
    table, maps = measure(images, reference.backdrop, keep_labels=True)
    ious, exact, recall = [], [], {}
    for b, entry in enumerate(entries):
        truth = object_masks(entry, data.size)
        found, union = maps[b] > 0, truth.any(0)
        ious.append((found & union).sum() / (found | union).sum())
        exact.append(table.count[b] == len(entry["objects"]))
        for mask, obj in zip(truth, entry["objects"]):
            recall.setdefault(obj["colour"] == "grey", []).append((found & mask).sum() / max(mask.sum(), 1))
    # measured (seed 3): clevr IoU 0.87, 0.93 of counts exact, recall 0.998 (grey 0.58); objects 0.92, 0.98, 1.0
    # (objects: a black cube's faces split in two; black's chromaticity is unstable)
    assert np.mean(ious) > (0.8 if name == "clevr" else 0.85)
    assert np.mean(exact) >= (0.85 if name == "clevr" else 0.95)
    assert np.mean(recall[False]) > 0.98
    if True in recall:
        assert np.mean(recall[True]) > 0.4


def test_segment_splits_colours_and_skips_shadows():
    backdrop = backdrop_of({"set": "clevr"})
    ground, shadow = np.asarray(backdrop.colour), np.asarray(backdrop.colour) * backdrop.shadow_ratio
    image = np.tile(ground, (32, 32, 1)).astype(np.float32)
    image[4:12, 4:12] = (0.6, 0.08, 0.08)  # a red square ...
    image[4:12, 12:20] = (0.08, 0.2, 0.65)  # ... touching a blue one
    image[20:28, 4:20] = shadow  # a shadow
    image[20:26, 22:28] = (0.38, 0.38, 0.38)  # a lit grey object
    labels, shift = segment(image, backdrop)
    assert shift < 1e-6 and labels.max() == 3
    assert len({labels[8, 8], labels[8, 16], labels[22, 24]}) == 3 and (labels[20:28, 4:20] == 0).all()
    clean = edge_fringe(image, labels, np.array([(0.6, 0.08, 0.08), (0.08, 0.2, 0.65), (0.38,) * 3]))
    shifted = image.copy()
    shifted[..., 0] = np.roll(image[..., 0], 1, axis=1)
    assert clean < 0.05 < edge_fringe(shifted, *segment(shifted, backdrop)[:1], np.array(
        [(0.6, 0.08, 0.08), (0.08, 0.2, 0.65), (0.38,) * 3]))


def test_palette_distance_follows_the_shading_segment():
    palette = Palette(("red", "grey"), np.array([[0.8, 0.1, 0.1], [0.5, 0.5, 0.5]]), np.array([[0.5, 1.0], [0.5, 1.0]]))
    d = palette.distance(np.array([[0.6, 0.075, 0.075], [0.3, 0.3, 0.3], [0.1, 0.1, 0.1], [0.5, 0.3, 0.3]]))
    assert d[0] < 1e-6 and d[1] < 1e-6  # on the segments
    assert abs(d[2] - np.sqrt(3) * 0.15) < 1e-6  # darker than the darkest grey: to its end
    assert d[3] > 0.1  # a dull red lies off both


@pytest.mark.parametrize("name", ["clevr", "objects"])
def test_gate_passes_real_images_and_fails_broken_generators(name, clevr, objects):
    """Held-out images against other held-out images pass; the same images broken fail, each on
    what it breaks (the thresholds in GATE were set between these two)."""
    data, reference = clevr if name == "clevr" else objects
    assert reference.floor["passed"], reference.floor["checks"]
    assert reference.floor["figures"]["colour_within_real"] > 0.95
    half = len(reference.real.count)
    other = _real(data, half, half)  # the floor's images
    assert reference.report(other)["passed"]
    train = (data.images_at(data.train[:half]) + 1) * 0.5
    fails = {"fringes": {"edge_fringe_excess"}, "dark": {"colour_within", "value_ratio"}, "hue": {"colour_within"},
             "blur": {"edge_chroma_ratio"},
             "copies": {"memorisation_pixel", "memorisation_encoder"},
             "repeat": {"diversity_pixel", "diversity_encoder"}}
    assert set(fails) == set(BROKEN_KINDS)
    for kind, checks in fails.items():
        report = reference.report(broken_images(other, kind, reference.backdrop, train))
        failed = {c for c, v in report["checks"].items() if not v["pass"]}
        assert not report["passed"] and checks <= failed, (kind, failed)


def test_gate_bounds_and_colour_spread():
    assert Bound(0.8, 1.2).holds(1.0) and not Bound(0.8, 1.2).holds(1.3) and not Bound(low=0.5).holds(float("nan"))
    verdict = gate({"colour_within": 0.95, "count_tv": 0.3, "unrelated": 1.0})
    assert set(verdict["checks"]) == {"colour_within", "count_tv"} and not verdict["passed"]
    assert set(GATE) >= {"colour_within", "area_ratio", "edge_chroma_ratio", "count_tv"}
    still = np.tile(np.array([0.5, 0.2, 0.1]), (2, 8, 1))
    still[1, 3] = np.nan  # a view without an object
    spread, shown = colour_spread(still)
    assert spread < 1e-9 and shown == 15 / 16
    moving = still.copy()
    moving[0, ::2, 0] += 0.2
    assert abs(colour_spread(moving)[0] - 0.5 * np.sqrt(0.01 / 3)) < 1e-9


def test_real_objects_colour_changes_little_with_the_view(objects):
    _, reference = objects
    figures = reference.real_views()
    # measured: real objects under the set's fixed light, 8 azimuths: spread 0.06-0.07 (8 and 32 objects, seed 5)
    assert figures["view_object_shown_real"] == 1.0 and 0 < figures["view_colour_std_real"] < 0.12
