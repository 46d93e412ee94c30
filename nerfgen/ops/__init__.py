"""The one door to nerfgen's ray-marching, compositing and encoding ops.

Ops with a compiled kernel (``cuda/``: hash-grid encoding, ray/box intersection, grid marching,
compositing) run it where it serves the tensors and fall back to a pure-torch twin of the same
signature (``*_torch``) otherwise; see :mod:`nerfgen.ops._backend` for how the kernels load.
"""

from nerfgen.ops.hashgrid import hash_grid_encode, hash_grid_encode_torch, level_resolutions, level_strides
from nerfgen.ops.intersect import ray_aabb_intersect, ray_aabb_intersect_torch
from nerfgen.ops.march import grid_lookup, traverse_grids, traverse_grids_torch
from nerfgen.ops.packed import RaySamples, packed_info_from_indices
from nerfgen.ops.volrend import (
    Composite,
    accumulate_along_rays,
    exclusive_sum_by_ray,
    render_transmittance_from_density,
    render_weight_from_density,
    volume_render,
    volume_render_torch,
)

__all__ = [
    "Composite",
    "RaySamples",
    "accumulate_along_rays",
    "exclusive_sum_by_ray",
    "grid_lookup",
    "hash_grid_encode",
    "hash_grid_encode_torch",
    "level_resolutions",
    "level_strides",
    "packed_info_from_indices",
    "ray_aabb_intersect",
    "ray_aabb_intersect_torch",
    "render_transmittance_from_density",
    "render_weight_from_density",
    "traverse_grids",
    "traverse_grids_torch",
    "volume_render",
    "volume_render_torch",
]
