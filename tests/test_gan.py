"""GRAF and GIRAFFE: the composition operator, R1, patches, object poses, the generators, a tiny
GAN training and resuming, programs, evaluation and the command line."""

from __future__ import annotations

import json
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from nerfgen.cli import main
from nerfgen.config import config_path, load_config
from nerfgen.fields import Conditioning, FieldOutput, VanillaField, VanillaFieldConfig
from nerfgen.files import read_tensors
from nerfgen.gan.config import CameraPrior, FieldSize, GanConfig, ObjectPrior, PatchConfig
from nerfgen.gan.controls import centroids, control_figures
from nerfgen.gan.discriminator import Discriminator, r1_penalty
from nerfgen.gan.generator import build_generator
from nerfgen.gan.patches import cut_patches, grid_pixels, patch_grid
from nerfgen.gan.priors import mode_centres, prior_cameras, sample_codes
from nerfgen.gan.programs import program_frames
from nerfgen.gan.task import GanTask
from nerfgen.gan.api import load_gan_run
from nerfgen.gan.run import GanRunInfo, write_gan_run
from nerfgen.render import ComposedField, compose
from nerfgen.render.neural_renderer import NeuralRenderer

CLEVR_CAMERA = CameraPrior(fov=56.0, distance=(4.5, 4.5), elevation=(40.0, 40.0), azimuth=(0.0, 0.0))


def tiny_config(model: str = "giraffe", **overrides) -> GanConfig:
    """A GIRAFFE (or GRAF) small enough to train a step in well under a second."""
    values = dict(model=model, size=16, batch=2, features=8, upsample=4, shape_latent=4, appearance_latent=4,
                  field=FieldSize(2, 16, 2, 1), background_field=FieldSize(1, 16, 2, 1), renderer_width=16,
                  discriminator_width=8, eval_samples=4, held_out=0.25, eval_every=0, checkpoint_every=0, max_steps=4)
    if model == "giraffe":
        values.update(aabb=(-3.0, -3.0, -0.2, 3.0, 3.0, 1.0), camera=CLEVR_CAMERA)
    else:
        values.update(patch=PatchConfig(size=8), camera=CameraPrior(fov=30.0, distance=(4.0, 4.0)))
    values.update(overrides)
    cfg = GanConfig(**values)
    cfg.sampler.n_samples = 8
    return cfg


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    from nerfgen.scenes.gan_sets import render_clevr

    return render_clevr(tmp_path_factory.mktemp("gan") / "clevr", 20, 16, objects=(1, 3), seed=0, workers=1)


# -- the composition operator -----------------------------------------------------------------------

def test_compose_against_hand_values():
    red, blue = torch.tensor([[1.0, 0, 0]]), torch.tensor([[0.0, 0, 1]])
    empty = compose([FieldOutput(torch.tensor([0.0]), red), FieldOutput(torch.tensor([2.0]), blue)])
    assert empty.sigma.item() == 2.0 and torch.allclose(empty.rgb, blue)  # an empty field adds nothing
    equal = compose([FieldOutput(torch.tensor([3.0]), red), FieldOutput(torch.tensor([3.0]), blue)])
    assert equal.sigma.item() == 6.0 and torch.allclose(equal.rgb, torch.tensor([[0.5, 0, 0.5]]))
    feats = compose([FieldOutput(torch.tensor([1.0]), features=torch.tensor([[4.0, 0]])),
                     FieldOutput(torch.tensor([3.0]), features=torch.tensor([[0.0, 8]]))],
                    present=torch.tensor([[True, False]]))
    assert feats.sigma.item() == 1.0 and torch.allclose(feats.features, torch.tensor([[4.0, 0]]))


def test_bounded_slots_skip_points_outside_their_box_and_agree_where_they_matter():
    torch.manual_seed(0)
    box = torch.tensor([-1.0, -1, -1, 1, 1, 1])
    obj = VanillaField(box, VanillaFieldConfig(depth=2, width=16, skip=1, position_frequencies=2,
                                               direction_frequencies=1, shape_latent=3, features=4))
    bg = VanillaField(torch.tensor([-3.0, -3, -3, 3, 3, 3]), VanillaFieldConfig(
        depth=2, width=16, skip=1, position_frequencies=2, direction_frequencies=1, shape_latent=3, features=4))
    transform = torch.eye(3, 4).repeat(3, 1, 1)
    transform[0, :, :3] *= 2.0  # object 0: half side 0.5 at the origin
    transform[1, :, :3] *= 2.0
    transform[1, 0, 3] = -3.0  # object 1: centred at x = 1.5
    from nerfgen.fields import Conditioning

    cond = Conditioning(latent=torch.randn(1, 3, 3), transform=transform[None],
                        present=torch.tensor([[True, True, True]]))
    x = torch.rand(500, 3) * 6 - 3
    d = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    fast = ComposedField([obj, obj, bg], bounded=[True, True, False])(x, d, cond)
    slow = ComposedField([obj, obj, bg])(x, d, cond)
    assert torch.allclose(fast.sigma, slow.sigma, atol=1e-6)
    assert torch.allclose(fast.features, slow.features, atol=1e-5)  # the background fills every point here
    calls = []
    obj.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    ComposedField([obj, obj, bg], bounded=[True, True, False])(x, d, cond)
    inside = [((x * 2 - shift).abs() <= 1).all(-1).sum().item() for shift in (torch.zeros(3), torch.tensor([3.0, 0, 0]))]
    assert calls == inside and sum(calls) < 100  # each object only at the points in its cube


# -- losses, patches, poses ---------------------------------------------------------------------------

def test_r1_against_a_hand_computation():
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    w = torch.randn(2, 4, 4)
    assert torch.allclose(r1_penalty((x * w).flatten(1).sum(1), x), w.pow(2).sum())  # grad of w.x is w
    y = torch.randn(3, 2, 4, 4, requires_grad=True)
    hand = (2 * y.detach()).pow(2).flatten(1).sum(1).mean()  # grad of |y|^2 is 2y
    assert torch.allclose(r1_penalty(y.pow(2).flatten(1).sum(1), y), hand)


def test_full_scale_patch_is_the_image_and_its_rays_hit_pixel_centres():
    g = torch.Generator().manual_seed(0)
    grid = patch_grid(2, 8, (1.0, 1.0), g)
    images = torch.rand(2, 3, 8, 8)
    assert torch.allclose(cut_patches(images, grid), images, atol=1e-6)
    px, py = grid_pixels(grid, 8, 8)
    assert torch.allclose(px[0, :8], torch.arange(8) + 0.5) and torch.allclose(py[0, ::8], torch.arange(8) + 0.5)
    small = patch_grid(64, 4, (0.25, 0.5), g)
    assert small.abs().max() <= 1 and (small[:, 0, -1, 0] - small[:, 0, 0, 0]).max() <= 0.5 * 2 * 3 / 4 + 1e-6


def test_world_to_object_maps_each_object_to_its_unit_cube():
    g = torch.Generator().manual_seed(1)
    codes = sample_codes(4, 2, 2, ObjectPrior(), CLEVR_CAMERA, g)
    m = codes.world_to_object()
    centre = (m[..., :3] @ codes.translation[..., None])[..., 0] + m[..., 3]
    assert torch.allclose(centre, torch.zeros_like(centre), atol=1e-6)
    theta = torch.deg2rad(codes.rotation)
    corner = codes.translation + codes.scale[..., None] * torch.stack([theta.cos(), theta.sin(), 0 * theta], -1)
    local = (m[..., :3] @ corner[..., None])[..., 0] + m[..., 3]
    assert torch.allclose(local, torch.tensor([1.0, 0, 0]).expand_as(local), atol=1e-5)
    assert torch.allclose(codes.translation[..., 2], codes.scale)  # resting on the ground
    counts = codes.present.sum(1)
    assert counts.min() >= 1 and counts.max() <= 3


def test_appearance_modes_draw_codes_near_a_few_centres():
    """With modes, every object's appearance code lies near one of the fixed centres (all of them used,
    in about equal shares); without, codes are standard normal; the run's codes are repeatable."""
    g = torch.Generator().manual_seed(2)
    codes = sample_codes(4000, 4, 16, ObjectPrior(), CLEVR_CAMERA, g, slots=1, modes=6, spread=0.1)
    centres = mode_centres(6, 16)
    distance = torch.cdist(codes.appearance[:, 0], centres)
    nearest = distance.min(1)
    assert nearest.values.max() < 1.0 < torch.cdist(centres, centres).topk(2, largest=False).values[:, 1].min()
    share = torch.bincount(nearest.indices, minlength=6) / 4000
    assert share.min() > 0.13 and share.max() < 0.21
    plain = sample_codes(4000, 4, 16, ObjectPrior(), CLEVR_CAMERA, g, slots=1).appearance
    assert abs(plain.mean().item()) < 0.02 and abs(plain.std().item() - 1) < 0.02
    assert torch.cdist(plain[:, 0], centres).min(1).values.median() > 2.0
    run_codes = [sample_codes(3, 4, 16, ObjectPrior(), CLEVR_CAMERA, torch.Generator().manual_seed(5), modes=6)
                 for _ in range(2)]
    assert torch.equal(run_codes[0].appearance, run_codes[1].appearance)
    with pytest.raises(ValueError, match="appearance_modes"):
        tiny_config("graf", appearance_modes=-1).validate("graf.yaml")


def test_minibatch_std_sees_a_batch_of_look_alikes():
    """Each group of images gets its own spread; a batch of copies gets none (a collapsed generator)."""
    from nerfgen.gan.discriminator import minibatch_std

    f = torch.randn(8, 5, 4, 4)
    spread = minibatch_std(f, 4)  # groups {0, 2, 4, 6} and {1, 3, 5, 7}
    by_hand = torch.stack([f[k::2].std(0, unbiased=False).mean() for k in (0, 1)])
    assert spread.shape == (8, 1, 4, 4) and torch.allclose(spread[:, 0, 0, 0], by_hand.repeat(4), atol=1e-5)
    assert minibatch_std(f[:1].expand(8, -1, -1, -1), 4).max() < 1e-3
    assert minibatch_std(f[:6], 4).shape == (6, 1, 4, 4)  # 6 does not divide into 4s: one group
    d = Discriminator(16, 8, group=4)
    assert d(torch.zeros(6, 3, 16, 16)).shape == (6,) and d.out.in_channels == 8 * 2 + 1


def test_lazy_r1_penalises_every_kth_step(clevr, tmp_path):
    cfg = tiny_config(max_steps=4, r1_every=2, optimizer="adam", minibatch_std=2)
    seen = []
    task_step = GanTask.step

    def step(self, ctx):
        result = task_step(self, ctx)
        seen.append("r1" in result.figures)
        return result

    with mock.patch.object(GanTask, "step", step):
        _train(clevr, tmp_path / "run", cfg)
    assert seen == [True, False, True, False]
    with pytest.raises(ValueError, match="r1_every"):
        tiny_config(r1_every=0).validate("x.yaml")


def test_networks_shapes_and_bad_sizes():
    assert NeuralRenderer(8, 4, 16)(torch.zeros(1, 8, 4, 5)).shape == (1, 3, 16, 20)
    assert Discriminator(32, 4)(torch.zeros(3, 3, 32, 32)).shape == (3,)
    with pytest.raises(ValueError, match="power of two"):
        NeuralRenderer(8, 3)
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(24)
    with pytest.raises(ValueError, match="takes 16x16"):
        Discriminator(16)(torch.zeros(1, 3, 8, 8))


def test_generators_render_images_and_patches_with_gradients():
    g = torch.Generator().manual_seed(0)
    for model in ("giraffe", "graf"):
        cfg = tiny_config(model)
        gen = build_generator(cfg)
        codes = sample_codes(2, 4, 4, cfg.objects, cfg.camera, g, 1 if model == "graf" else None)
        grid = patch_grid(2, 8, (0.5, 1.0), g) if model == "graf" else None
        out = gen(codes, prior_cameras(cfg.camera, codes.views, cfg.size), grid, stratified=True)
        assert out.shape == ((2, 3, 8, 8) if model == "graf" else (2, 3, 16, 16))
        assert 0 <= out.min() and out.max() <= 1
        out.mean().backward()
        assert all(p.grad is not None for p in gen.field.parameters()) if model == "graf" else True


def test_shipped_graf_colours_a_point_alike_from_every_direction():
    # the embedded objects are lit by one fixed light: an object's colour must not turn with the camera
    cfg = load_config(GanConfig, config_path("graf"))
    field = build_generator(cfg).field
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, generator=g) * 2 - 1
    cond = Conditioning(torch.randn(1, cfg.shape_latent + cfg.appearance_latent, generator=g).expand(64, -1))
    looks = [field(x, F.normalize(torch.randn(64, 3, generator=g), dim=-1), cond).rgb for _ in range(8)]
    assert all(torch.equal(look, looks[0]) for look in looks)
    view_dependent = load_config(GanConfig, config_path("graf"), {"field": {"view_dependent": True}})
    field = build_generator(view_dependent).field
    other = [field(x, F.normalize(torch.randn(64, 3, generator=g), dim=-1), cond).rgb for _ in range(2)]
    assert not torch.allclose(other[0], other[1])


# -- training, resuming, products --------------------------------------------------------------------

def _train(data, output, cfg, **options):
    from nerfgen.gan.api import gan_training

    engine = gan_training(data, output, cfg, **options)
    return engine, engine.run()


@pytest.mark.parametrize("model", ["giraffe", "graf"])
def test_a_tiny_gan_trains_with_finite_losses_and_changes_the_generator(clevr, tmp_path, model):
    cfg = tiny_config(model, max_steps=3, eval_every=3)
    engine, summary = _train(clevr, tmp_path / "run", cfg)
    assert summary.steps == 3 and all(torch.isfinite(torch.tensor(float(summary.figures[k])))
                                      for k in ("d_loss", "g_loss", "r1"))
    fresh = build_generator(cfg)
    torch.manual_seed(cfg.seed)
    fresh = build_generator(cfg)  # the same initial weights as the run's
    trained = engine.task.generator.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.state_dict().items())
    run = load_gan_run(tmp_path / "run", "cpu")
    assert (tmp_path / "run" / "samples.png").is_file() and (tmp_path / "run" / "samples" / "step_000003.png").is_file()
    assert run.sample(3).shape == (3, 16, 16, 3)


def test_resume_continues_the_same_run(clevr, tmp_path):
    """Learning rates halving every 2 steps (counted in steps, not in the budget): 2 + 2 steps are 4."""
    from nerfgen.gan.task import HalfLife

    assert HalfLife(steps=2).rate(1.0, 4, 0.1) == 0.25 and HalfLife().rate(1.0, 4, 0.1) == 1.0
    cfg = tiny_config(max_steps=4, lr_half_life=2)
    _train(clevr, tmp_path / "straight", cfg)
    _train(clevr, tmp_path / "halves", tiny_config(max_steps=2, lr_half_life=2))
    _train(None, tmp_path / "halves", None, resume=True, max_steps=4)
    a, b = read_tensors(tmp_path / "straight" / "model.safetensors"), read_tensors(tmp_path / "halves" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- controls -----------------------------------------------------------------------------------------

def _untrained_run(tmp_path, model="giraffe"):
    torch.manual_seed(0)
    cfg = tiny_config(model, size=32)
    gen = build_generator(cfg)
    write_gan_run(tmp_path / model, GanRunInfo(cfg, "none"), {"generator": gen, "ema": gen, "discriminator": gen})
    return load_gan_run(tmp_path / model, "cpu")


def test_commanded_translation_moves_the_rendered_object_the_right_way(tmp_path):
    run = _untrained_run(tmp_path)
    codes = run.codes(1, seed=3)
    codes.present[:] = torch.tensor([[True, False, False]])
    codes.translation[0, 0, :2] = torch.tensor([0.0, 0.0])
    codes.scale[:] = 0.4
    codes.translation[0, 0, 2] = 0.4
    cameras = run.cameras(codes)

    def where(c):
        return centroids(run.generator.object_opacity(c, cameras, 0)[:1])[0][0]

    left, right = codes.clone(), codes.clone()
    left.translation[0, 0, 1], right.translation[0, 0, 1] = -0.8, 0.8  # the camera on +x sees +y to its right
    assert where(right)[0] > where(codes)[0] + 3 > where(left)[0] + 6
    near = codes.clone()
    near.translation[0, 0, 0] = 1.0  # toward the camera: lower in the image
    assert where(near)[1] > where(codes)[1] + 1
    figures = control_figures(run, scenes=3)
    assert figures["position_error_px"] < 0.5 * figures["position_baseline_px"]
    assert figures["move_direction_cosine"] > 0.9 and figures["move_outside_over_inside"] < 0.5


def test_programs_and_rendering_any_frame_size(tmp_path):
    run = _untrained_run(tmp_path)
    frames = list(program_frames(run, "add-objects", scenes=2, frames=3))
    assert len(frames) == 3 and frames[0].shape == (32, 64, 3)
    assert not (frames[0] == frames[-1]).all()
    image = run.render(run.orbit_cameras(2, 30, 18), 1)
    assert image.rgb.shape == (18, 30, 3) and image.opacity.shape == (18, 30)
    graf = _untrained_run(tmp_path, "graf")
    with pytest.raises(ValueError, match="GRAF run has one object"):
        next(program_frames(graf, "move-object"))
    assert next(program_frames(graf, "rotate-camera", scenes=1, frames=2)).shape == (32, 32, 3)


def test_gan_command_line_end_to_end(clevr, tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        main(["gan", "train", str(clevr), "--output", str(run), "--config", "giraffe", "--max-steps", "2",
              "--set", "size=16", "--set", "batch=2", "--set", "features=8", "--set", "field.width=16",
              "--set", "background_field.width=16", "--set", "renderer_width=16", "--set", "eval_every=0",
              "--set", "discriminator_width=8", "--set", "sampler.n_samples=8", "--set", "held_out=0.25"])
    assert exit_.value.code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    for argv in (["gan", "sample", str(run), "--count", "4", "--output", str(tmp_path / "s.png")],
                 ["gan", "render", str(run), "--program", "move-object", "--frames", "3", "--scenes", "2",
                  "--output", str(tmp_path / "m.gif")],
                 ["gan", "eval", str(run), "--count", "8"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0, argv
    report = json.loads((run / "eval.json").read_text())
    offline = report["nerfgen-randconv-v1"]
    assert offline["comparable_to_published"] is False and offline["kid"] == offline["kid"]
    assert "ground_truth_position_error_px" in report["controls"]
    quality = report["quality"]  # 5 held-out images: two halves of 2 (figures of no weight; the gate runs)
    assert quality["real_images"] == 2 and set(quality["checks"]) >= {"colour_within", "count_tv", "edge_fringe_excess"}
    assert (tmp_path / "s.png").is_file() and (tmp_path / "m.gif").is_file()
    with pytest.raises(SystemExit) as exit_:
        main(["gan", "train", str(tmp_path / "nothing-here"), "--output", str(tmp_path / "r2")])
    assert exit_.value.code == 2 and "nothing-here" in capsys.readouterr().err
