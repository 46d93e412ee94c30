"""Generalizable fields: projection into source views against hand values, feature sampling at
pixel centres, pooling that ignores the order of the views, source views checked at the boundary,
the procedural scene splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nerfgen.cameras import Cameras, image_rays, look_at
from nerfgen.fields import Conditioning
from nerfgen.generalize.pixelnerf import PixelFieldConfig, PixelNeRF, PixelNeRFConfig, EncoderConfig, pool_views
from nerfgen.generalize.projection import project_points, sample_maps
from nerfgen.generalize.sources import SourceViews
from nerfgen.render import StratifiedConfig


def camera(position, target=(0.0, 0.0, 0.0), f=(50.0, 40.0), c=(32.0, 24.0), size=(64, 48), distortion=None):
    c2w = look_at(position, target)[None]
    t = lambda v: torch.tensor([v], dtype=torch.float32)  # noqa: E731
    return Cameras(c2w, t(f[0]), t(f[1]), t(c[0]), t(c[1]), size[0], size[1],
                   None if distortion is None else torch.tensor([distortion], dtype=torch.float32))


def stack(*cams: Cameras) -> Cameras:
    return Cameras(*(torch.cat([getattr(c, k) for c in cams]) for k in ("c2w", "fx", "fy", "cx", "cy")),
                   cams[0].width, cams[0].height, torch.cat([c.distortion for c in cams]))


def test_projection_matches_hand_values():
    # a camera at (0, 0, 4) looking down -z at the origin, +y up: world x -> image right, world y -> image up
    cam = Cameras(torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4]]]), torch.tensor([50.0]),
                  torch.tensor([40.0]), torch.tensor([32.0]), torch.tensor([24.0]), 64, 48)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 0.0, 5.0], [3.0, 0.0, 0.0]])
    p = project_points(cam, points, torch.tensor([[0.0, 0.0, -1.0]] * 5))
    # depth 4: u = 32 + 50 * 1/4 = 44.5; depth 2: v = 24 - 40 * 1/2 = 4; behind the camera: depth -1
    assert torch.allclose(p.uv[0, :3], torch.tensor([[32.0, 24.0], [44.5, 24.0], [32.0, 4.0]]))
    assert torch.allclose(p.depth[0], torch.tensor([4.0, 4.0, 2.0, -1.0, 4.0]))
    assert p.inside[0].tolist() == [True, True, True, False, False]  # (3, 0, 0) lands at u = 69.5 > 64
    assert torch.allclose(p.local[0, 1], torch.tensor([1.0, 0.0, 4.0]))  # OpenCV axes: x right, y down, z ahead
    assert torch.allclose(p.directions[0, 0], torch.tensor([0.0, 0.0, 1.0]))  # looking along the axis


def test_projection_inverts_the_cameras_rays_with_distortion():
    cams = stack(camera((3.0, 1.0, 2.0)), camera((-2.0, 3.0, 1.0), distortion=(0.05, -0.01, 0.002, 0.001)))
    for v in range(2):
        rays = image_rays(cams, v)
        points = rays.origins + rays.directions * 2.5
        p = project_points(cams[[v]], points)
        py, px = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
        assert torch.allclose(p.uv[0], torch.stack([px.reshape(-1), py.reshape(-1)], -1), atol=2e-3)


def test_feature_sampling_at_pixel_centres_reads_the_pixel():
    maps = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).view(2, 3, 6, 8)  # 2 views, 3 channels, 6 x 8
    rows, cols = torch.tensor([0, 2, 5, 3]), torch.tensor([0, 7, 3, 4])
    for scale in (1, 4):  # the map covers an image of 8 x 6 pixels or of 32 x 24
        uv = torch.stack([(cols + 0.5) * scale, (rows + 0.5) * scale], -1).expand(2, -1, -1).float()
        got = sample_maps(maps, uv, 8 * scale, 6 * scale)
        assert torch.allclose(got, maps[:, :, rows, cols].transpose(1, 2), atol=1e-4)
    halfway = sample_maps(maps, torch.tensor([[[1.0, 0.5]]]).expand(2, -1, -1), 8, 6)  # between columns 0 and 1
    assert torch.allclose(halfway[:, 0], maps[:, :, 0, :2].mean(-1))


def test_pooling_is_symmetric_in_the_views():
    h, w = torch.randn(3, 5, 4), torch.rand(3, 5)
    order = torch.tensor([2, 0, 1])
    for mode in ("mean", "meanvar"):
        assert torch.allclose(pool_views(h, w, mode), pool_views(h[order], w[order], mode), atol=1e-6)


def tiny_model(pooling: str = "mean", colour: str = "mlp") -> PixelNeRF:
    torch.manual_seed(0)
    config = PixelNeRFConfig(EncoderConfig((4, 6)), PixelFieldConfig(16, 1, 1, 2, pooling, colour),
                             StratifiedConfig(n_samples=8))
    model = PixelNeRF(config, torch.tensor([-1.0, -1, -1, 1, 1, 1])).eval()
    for p in model.parameters():  # untrained blocks start at zero: make every path matter
        torch.nn.init.normal_(p, std=0.3)
    return model


@pytest.mark.parametrize("pooling,colour", [("mean", "mlp"), ("meanvar", "blend")])
def test_the_field_ignores_the_order_of_the_source_views(pooling, colour):
    model = tiny_model(pooling, colour)
    cams = stack(camera((3.0, 0.5, 1.0)), camera((0.0, 3.0, 1.5)), camera((-2.5, -1.5, 1.0)))
    images = torch.rand(3, 48, 64, 3)
    points, dirs = torch.rand(50, 3) * 1.6 - 0.8, torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    outs = []
    for order in ([0, 1, 2], [2, 0, 1]):
        features = model.encode(SourceViews(images[order], cams[order], [str(i) for i in order]))
        outs.append(model.field(points, dirs, Conditioning(views=features)))
    assert torch.allclose(outs[0].sigma, outs[1].sigma, atol=1e-5)
    assert torch.allclose(outs[0].rgb, outs[1].rgb, atol=1e-5)
    assert outs[0].sigma.std() > 0 and outs[0].rgb.std() > 0


def test_one_source_view_renders_and_the_field_refuses_no_views():
    model = tiny_model()
    features = model.encode(SourceViews(torch.rand(1, 48, 64, 3), camera((3.0, 0.0, 1.0)), ["a"]))
    out = model.field(torch.zeros(4, 3), torch.tensor([[0.0, 0.0, -1.0]] * 4), Conditioning(views=features))
    assert out.rgb.shape == (4, 3) and bool(torch.isfinite(out.sigma).all())
    with pytest.raises(ValueError, match="source views"):
        model.field(torch.zeros(4, 3), torch.tensor([[0.0, 0.0, -1.0]] * 4))
    with pytest.raises(ValueError, match="takes no latent"):
        model.field(torch.zeros(4, 3), torch.zeros(4, 3), Conditioning(latent=torch.zeros(1, 2), views=features))


class FakeDataset:
    """What SourceViews.from_dataset reads of a loaded capture."""

    def __init__(self, sizes):
        n = len(sizes)
        self.source, self.split, self.bounds = "/data/capture", "train", None
        self.sizes = torch.tensor(sizes)
        self.filenames = [f"/data/capture/r_{i}.png" for i in range(n)]
        self.cameras = Cameras(torch.eye(4)[None, :3].repeat(n, 1, 1), *(torch.full((n,), 8.0) for _ in range(4)),
                               max(s[0] for s in sizes), max(s[1] for s in sizes))

    def __len__(self):
        return len(self.sizes)

    def image(self, i):
        w, h = self.sizes[i].tolist()
        return torch.full((h, w, 4), 255, dtype=torch.uint8)


def test_source_views_bad_input_is_one_clear_error_naming_the_file():
    data = FakeDataset([(16, 12), (16, 12), (20, 12)])
    views = SourceViews.from_dataset(data, [0, 1])
    assert views.images.shape == (2, 12, 16, 3) and views.names[1] == "/data/capture/r_1.png"
    with pytest.raises(ValueError, match=r"r_2.png: source views must share one size: this one is 20x12, "
                                         r".*r_0.png is 16x12"):
        SourceViews.from_dataset(data, [0, 2])
    with pytest.raises(ValueError, match=r"/data/capture: source view 7 out of range: the train split has 3 views"):
        SourceViews.from_dataset(data, [0, 7])
    broken = FakeDataset([(16, 12)])
    broken.cameras.c2w[0, 0, 3] = math.nan
    with pytest.raises(ValueError, match="r_0.png: source poses must be finite"):
        SourceViews.from_dataset(broken, [0])


def test_held_out_scenes_hold_only_held_out_shapes_and_colours():
    from nerfgen.scenes.multiview import HELD_OUT_COLOURS, HELD_OUT_SHAPES, MultiViewConfig, SceneSpec, scene_objects
    from nerfgen.scenes.objects import COLOURS

    config, held_rgb = MultiViewConfig(), {COLOURS[c] for c in HELD_OUT_COLOURS}

    def nearest(rgb) -> tuple:  # object colours are jittered a little about their named colour
        return min(COLOURS.values(), key=lambda c: float(np.abs(np.subtract(c, rgb)).max()))

    for i in range(40):
        train_objects, train = scene_objects(SceneSpec(0, "train", i), config)
        held_objects, held = scene_objects(SceneSpec(0, "held_out", i), config)
        words = set(train.split())
        assert not words & set(HELD_OUT_SHAPES) and not words & set(HELD_OUT_COLOURS), train
        assert set(held.split()) - {"a", "on", "left", "of"} <= set(HELD_OUT_SHAPES) | set(HELD_OUT_COLOURS), held
        for o in train_objects:
            assert nearest(o.material.color) not in held_rgb and (o.material.pattern == "solid" or tuple(
                o.material.color2) not in held_rgb), (train, o.material)
        for o in held_objects:
            assert nearest(o.material.color) in held_rgb and (o.material.pattern == "solid" or tuple(
                o.material.color2) in held_rgb), (held, o.material)


def test_procedural_scenes_come_without_end_and_are_the_same_on_resume():
    from nerfgen.generalize.data import ProceduralScenes, draw_sources
    from nerfgen.scenes.multiview import MultiViewConfig

    config = MultiViewConfig(views=3, size=12, supersample=1)
    pool = ProceduralScenes(config, seed=5, pool=2, refresh_every=3, background=torch.ones(3))
    pool.advance(0)
    assert sorted(pool.scenes) == [0, 1]
    pool.advance(7)  # two new scenes drawn by step 7: the pool holds the newest two
    assert sorted(pool.scenes) == [2, 3]
    fresh = ProceduralScenes(config, seed=5, pool=2, refresh_every=3, background=torch.ones(3))
    fresh.advance(7)  # a resumed run renders the very same scenes
    assert torch.equal(fresh.scenes[3].images, pool.scenes[3].images)
    assert pool.scenes[3].images.shape == (3, 12, 12, 3) and pool.scenes[3].images.float().std() > 0
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        sources, targets = draw_sources(5, 1, 3, g)
        assert 1 <= len(sources) <= 3 and len(sources) + len(targets) == 5
        assert not set(sources.tolist()) & set(targets.tolist())
