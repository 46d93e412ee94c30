"""nerfgen: radiance fields from posed images and from text, on CPU and CUDA.

The public API (:mod:`nerfgen.api`; names load on first use, so ``import nerfgen`` is cheap)::

    import nerfgen
    run = nerfgen.train("data/tabletop", "runs/tabletop", config="demo", max_seconds=60)
    image = run.render(run.orbit_cameras(8), 3)            # ImageOutput: rgb, depth, opacity
    run.render_orbit("orbit.mp4")                           # or run.render_path("camera_path.json", ...)
    run.export_mesh("mesh.ply")
    cube = nerfgen.generate("a red cube", "runs/red-cube")
    again = nerfgen.load_run("runs/red-cube", device="cpu")
    gan = nerfgen.train_gan("data/clevr", "runs/clevr", config="giraffe")  # GIRAFFE on unposed images
    prior = nerfgen.train_prior("runs/prior", max_steps=500)             # the built-in diffusion prior
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # runs and the engine
    "train": "nerfgen.api", "generate": "nerfgen.api", "reconstruction": "nerfgen.api", "generation": "nerfgen.api",
    "training": "nerfgen.api", "load_run": "nerfgen.kinds", "RunKind": "nerfgen.kinds", "Run": "nerfgen.runs",
    "RunInfo": "nerfgen.runs", "Renderable": "nerfgen.renderable", "RenderTraits": "nerfgen.renderable",
    "LayoutEditable": "nerfgen.renderable", "CodeEditable": "nerfgen.renderable", "Refinable": "nerfgen.renderable",
    "SourceViewed": "nerfgen.renderable", "TimeConditioned": "nerfgen.renderable",
    # baked runs (nerfgen bake)
    "bake": "nerfgen.bake", "load_baked": "nerfgen.bake", "BakedRun": "nerfgen.bake", "BakeConfig": "nerfgen.bake",
    "StepReport": "nerfgen.engine",
    "format_figures": "nerfgen.engine.progress",
    # the built-in prior's training
    "train_prior": "nerfgen.prior.api", "prior_training": "nerfgen.prior.api", "PriorRun": "nerfgen.prior.run",
    # generated scenes of several objects
    "generate_scene": "nerfgen.api", "scene_generation": "nerfgen.api", "SceneRun": "nerfgen.generate.scene_run",
    "Layout": "nerfgen.generate.layout", "read_layout": "nerfgen.generate.layout",
    "write_layout": "nerfgen.generate.layout", "parse_scene": "nerfgen.generate.scene_prompt",
    "solve_layout": "nerfgen.generate.layout_solver",
    # GAN runs (GRAF / GIRAFFE)
    "train_gan": "nerfgen.gan.api", "gan_training": "nerfgen.gan.api", "load_gan_run": "nerfgen.gan.api",
    "GanRun": "nerfgen.gan.run", "SceneCodes": "nerfgen.gan.priors", "appearance_codes": "nerfgen.gan.priors",
    # generalizable fields (pixelNeRF, MVSNeRF)
    "train_generalizable": "nerfgen.generalize.api", "generalize_training": "nerfgen.generalize.api",
    "load_general_run": "nerfgen.generalize.api", "GeneralRun": "nerfgen.generalize.run",
    "SourceViews": "nerfgen.generalize.sources", "import_mvsnerf": "nerfgen.generalize.run",
    # cameras and camera paths
    "Cameras": "nerfgen.cameras", "Rays": "nerfgen.cameras", "Orbit": "nerfgen.cameras", "Views": "nerfgen.cameras",
    "look_at": "nerfgen.cameras", "orbit_cameras": "nerfgen.cameras", "view_cameras": "nerfgen.cameras",
    "fov_cameras": "nerfgen.cameras", "CameraPath": "nerfgen.cameras", "Keyframe": "nerfgen.cameras",
    "path_from_keyframes": "nerfgen.cameras", "read_camera_path": "nerfgen.cameras",
    "write_camera_path": "nerfgen.cameras", "quaternion_from_matrix": "nerfgen.cameras",
    "matrix_from_quaternion": "nerfgen.cameras",
    # rendering, data, outputs
    "ImageOutput": "nerfgen.render", "Conditioning": "nerfgen.fields", "colorize_depth": "nerfgen.render.display",
    "load_dataset": "nerfgen.data", "DatasetError": "nerfgen.data", "write_video": "nerfgen.video",
    "evaluate": "nerfgen.reconstruct.evaluate", "load_lpips_weights": "nerfgen.reconstruct.lpips",
    "MeshOptions": "nerfgen.mesh",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nerfgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
