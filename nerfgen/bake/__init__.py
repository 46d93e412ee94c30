"""Baked fields: a trained run's radiance field turned into a sparse voxel grid of density and
spherical-harmonic colour that a CPU renders in milliseconds (``nerfgen bake``, ``--baked``).

* :mod:`nerfgen.bake.build`: :class:`BakeConfig` and :func:`bake_model` (field -> grid);
* :mod:`nerfgen.bake.grid`: :class:`BakedGrid` (render rays, save, load);
* :mod:`nerfgen.bake.finetune`: the values trained against the training images;
* :mod:`nerfgen.bake.run`: :func:`bake` (a run directory), :func:`load_baked` -> :class:`BakedRun`.
"""

from nerfgen.bake.build import BakeConfig, bake_model
from nerfgen.bake.grid import BakedGrid, BakedShading
from nerfgen.bake.run import BakedRun, bake, load_baked

__all__ = ["BakeConfig", "BakedGrid", "BakedRun", "BakedShading", "bake", "bake_model", "load_baked"]
