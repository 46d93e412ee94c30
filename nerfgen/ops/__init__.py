"""The one door to nerfgen's ray-marching and encoding ops.

Each op here is the pure-torch reference; compiled backends (``cuda/``) plug in behind the
same signatures.
"""

from nerfgen.ops.hashgrid import hash_grid_encode, level_resolutions, level_strides
from nerfgen.ops.intersect import ray_aabb_intersect
from nerfgen.ops.march import grid_lookup, traverse_grids
from nerfgen.ops.packed import RaySamples, packed_info_from_indices
from nerfgen.ops.volrend import (
    accumulate_along_rays,
    exclusive_sum_by_ray,
    render_transmittance_from_density,
    render_weight_from_density,
)

__all__ = [
    "RaySamples",
    "accumulate_along_rays",
    "exclusive_sum_by_ray",
    "grid_lookup",
    "hash_grid_encode",
    "level_resolutions",
    "level_strides",
    "packed_info_from_indices",
    "ray_aabb_intersect",
    "render_transmittance_from_density",
    "render_weight_from_density",
    "traverse_grids",
]
