"""The Python parts of the compiled ops of ``torch.ops.nerfgen``: fake (meta) kernels, so the ops
trace under ``torch.compile`` and pass ``torch.library.opcheck``, and autograd formulas.

:func:`register` runs once, right after :mod:`nerfgen.ops._backend` loads the library (the
bindings name this module with ``m.set_python_module``); the op modules never import it.
"""

from __future__ import annotations

import torch
from torch import Tensor

# --- hash-grid encoding (nerfgen/ops/hashgrid.py) -------------------------------------------------


def _hash_grid_fwd_fake(positions: Tensor, table: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int):
    return table.new_empty((positions.shape[0], resolutions.shape[0] * table.shape[1]))


def _hash_grid_bwd_fake(grad_out: Tensor, positions: Tensor, resolutions: Tensor, strides: Tensor, log2_table_size: int):
    n_levels = resolutions.shape[0]
    return grad_out.new_empty((n_levels * (1 << log2_table_size), grad_out.shape[1] // n_levels))


def _hash_grid_bwd_positions_fake(grad_out, positions, table, resolutions, strides, log2_table_size):
    return torch.empty_like(positions)


def _hash_grid_setup_context(ctx, inputs, output) -> None:
    positions, table, resolutions, strides, log2_table_size = inputs
    ctx.save_for_backward(positions, table, resolutions, strides)
    ctx.log2_table_size = log2_table_size


def _hash_grid_backward(ctx, grad_out: Tensor):
    positions, table, resolutions, strides = ctx.saved_tensors
    grad_out = grad_out.contiguous()
    grad_positions = grad_table = None
    if ctx.needs_input_grad[0]:
        grad_positions = torch.ops.nerfgen.hash_grid_bwd_positions(
            grad_out, positions, table, resolutions, strides, ctx.log2_table_size
        )
    if ctx.needs_input_grad[1]:
        grad_table = torch.ops.nerfgen.hash_grid_bwd(grad_out, positions, resolutions, strides, ctx.log2_table_size)
    return grad_positions, grad_table, None, None, None


# --- ray marching (nerfgen/ops/intersect.py, march.py) --------------------------------------------


def _intersect_fake(origins, directions, aabbs, near_plane, far_plane):
    shape = (origins.shape[0], aabbs.shape[0])
    return origins.new_empty(shape), origins.new_empty(shape), origins.new_empty(shape, dtype=torch.bool)


def _traverse_fake(origins, directions, binaries, aabbs, jitter, near_plane, far_plane, step_size, cone_angle):
    n = torch.library.get_ctx().new_dynamic_size()
    return origins.new_empty(n), origins.new_empty(n), origins.new_empty(n, dtype=torch.long)


# --- compositing (nerfgen/ops/volrend.py) ---------------------------------------------------------


def _composite_fake(t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps):
    n_rays = packed_info.shape[0]
    return (colors.new_empty((n_rays, colors.shape[1])), sigmas.new_empty(n_rays), sigmas.new_empty(n_rays),
            torch.empty_like(sigmas), torch.empty_like(sigmas))


def _composite_bwd_fake(grad_color, grad_opacity, grad_depth, grad_weights, grad_transmittance, t_starts, t_ends,
                        sigmas, colors, packed_info, weights, transmittance, early_stop_eps):
    return torch.empty_like(sigmas), torch.empty_like(colors)


def _composite_setup_context(ctx, inputs, output) -> None:
    t_starts, t_ends, sigmas, colors, packed_info, early_stop_eps = inputs
    ctx.save_for_backward(t_starts, t_ends, sigmas, colors, packed_info, output[3], output[4])
    ctx.early_stop_eps = early_stop_eps


def _composite_backward(ctx, grad_color, grad_opacity, grad_depth, grad_weights, grad_transmittance):
    """Cotangents of unused outputs arrive as None: they count as zeros."""
    t_starts, t_ends, sigmas, colors, packed_info, weights, transmittance = ctx.saved_tensors
    n_rays = packed_info.shape[0]
    shapes = ((n_rays, colors.shape[1]), (n_rays,), (n_rays,), sigmas.shape, sigmas.shape)
    grads = [sigmas.new_zeros(shape) if g is None else g.contiguous()
             for g, shape in zip((grad_color, grad_opacity, grad_depth, grad_weights, grad_transmittance), shapes)]
    grad_sigmas, grad_colors = torch.ops.nerfgen.composite_bwd(
        *grads, t_starts, t_ends, sigmas, colors, packed_info, weights, transmittance, ctx.early_stop_eps
    )
    return None, None, grad_sigmas, grad_colors, None, None


# --- factorised planes (nerfgen/ops/planes.py) ---------------------------------------------------


def _plane_fwd_fake(coords: Tensor, table: Tensor, axes: Tensor, sizes: Tensor, offsets: Tensor, n_levels: int):
    return table.new_empty((coords.shape[0], n_levels * table.shape[1]))


def _plane_bwd_fake(grad_out, coords, table, axes, sizes, offsets, n_levels, table_grad, coords_grad):
    return (torch.empty_like(table) if table_grad else table.new_empty(0),
            torch.empty_like(coords) if coords_grad else coords.new_empty(0))


def _plane_setup_context(ctx, inputs, output) -> None:
    coords, table, axes, sizes, offsets, n_levels = inputs
    ctx.save_for_backward(coords, table, axes, sizes, offsets)
    ctx.n_levels = n_levels


def _plane_backward(ctx, grad_out: Tensor):
    coords, table, axes, sizes, offsets = ctx.saved_tensors
    want_coords, want_table = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad_table, grad_coords = torch.ops.nerfgen.plane_bwd(grad_out.contiguous(), coords, table, axes, sizes, offsets,
                                                          ctx.n_levels, want_table, want_coords)
    return (grad_coords if want_coords else None), (grad_table if want_table else None), None, None, None, None


# --- baked fields (nerfgen/ops/baked.py) -----------------------------------------------------------


def _sparse_interp_fake(positions, values, block_ids, voxel_rows, cell_occupied, aabbs):
    return values.new_empty((positions.shape[0], values.shape[1])), values.new_empty(positions.shape[0])


def _sparse_interp_bwd_fake(grad_sum, positions, block_ids, voxel_rows, cell_occupied, aabbs, n_rows):
    return grad_sum.new_empty((n_rows, grad_sum.shape[1]))


def _baked_traverse_fake(origins, directions, block_ids, voxel_rows, cell_occupied, aabbs, cell_bits, present_bits,
                         row_base, coarse, bounds, jitter, near_plane, far_plane, step_size, cone_angle):
    n = torch.library.get_ctx().new_dynamic_size()
    return origins.new_empty(n), origins.new_empty(n), origins.new_empty(n, dtype=torch.long)


def _baked_render_fake(origins, directions, block_ids, voxel_rows, cell_occupied, aabbs, cell_bits, present_bits,
                       row_base, coarse, bounds, values, sh_degree, empty_raw, near_plane, far_plane, step_size,
                       cone_angle, early_stop_eps):
    n = origins.shape[0]
    return (origins.new_empty((n, 3)), origins.new_empty(n), origins.new_empty(n),
            origins.new_empty(n, dtype=torch.long))


def _sparse_interp_setup_context(ctx, inputs, output) -> None:
    positions, values, block_ids, voxel_rows, cell_occupied, aabbs = inputs
    ctx.save_for_backward(positions, block_ids, voxel_rows, cell_occupied, aabbs)
    ctx.n_rows = values.shape[0]


def _sparse_interp_backward(ctx, grad_sum: Tensor, grad_present: Tensor):
    """Gradient to the values only (the present weight does not depend on them)."""
    grad_values = None
    if ctx.needs_input_grad[1] and grad_sum is not None:
        positions, *grid = ctx.saved_tensors
        grad_values = torch.ops.nerfgen.sparse_interp_bwd(grad_sum.contiguous(), positions, *grid, ctx.n_rows)
    return None, grad_values, None, None, None, None


# --- fused MLPs (nerfgen/ops/mlp.py) ----------------------------------------------------------------


def _ngp_mlp_fake(enc, sh, weights, biases, n_density):
    return enc.new_empty(enc.shape[0]), enc.new_empty((enc.shape[0], 3))


def _ngp_density_fake(enc, weights, biases):
    return enc.new_empty(enc.shape[0])


def _ngp_mlp_bwd_fake(grad_density, grad_rgb, enc, sh, weights, biases, n_density):
    return torch.empty_like(enc), [torch.empty_like(w) for w in weights], [torch.empty_like(b) for b in biases]


def _ngp_mlp_setup_context(ctx, inputs, output) -> None:
    enc, sh, weights, biases, n_density = inputs
    ctx.save_for_backward(enc, sh, *weights, *biases)
    ctx.n_layers, ctx.n_density = len(weights), n_density


def _ngp_mlp_backward(ctx, grad_density: Tensor, grad_rgb: Tensor):
    """The kernel recomputes each tile's forward pass; nothing but the inputs is kept."""
    enc, sh, *params = ctx.saved_tensors
    weights, biases = params[:ctx.n_layers], params[ctx.n_layers:]
    grad_density = enc.new_zeros(enc.shape[0]) if grad_density is None else grad_density.contiguous()
    grad_rgb = enc.new_zeros((enc.shape[0], 3)) if grad_rgb is None else grad_rgb.contiguous()
    grad_enc, grad_w, grad_b = torch.ops.nerfgen.ngp_mlp_bwd(grad_density, grad_rgb, enc, sh, weights, biases,
                                                            ctx.n_density)
    return grad_enc, None, grad_w, grad_b, None


def register() -> None:
    """Register every fake kernel and autograd formula (the library must be loaded)."""
    fakes = {
        "hash_grid_fwd": _hash_grid_fwd_fake,
        "hash_grid_bwd": _hash_grid_bwd_fake,
        "hash_grid_bwd_positions": _hash_grid_bwd_positions_fake,
        "ray_aabb_intersect": _intersect_fake,
        "traverse_grids": _traverse_fake,
        "composite_fwd": _composite_fake,
        "composite_bwd": _composite_bwd_fake,
        "plane_fwd": _plane_fwd_fake,
        "plane_bwd": _plane_bwd_fake,
        "sparse_interp_fwd": _sparse_interp_fake,
        "sparse_interp_bwd": _sparse_interp_bwd_fake,
        "baked_traverse": _baked_traverse_fake,
        "baked_render": _baked_render_fake,
        "ngp_mlp_fwd": _ngp_mlp_fake,
        "ngp_density_fwd": _ngp_density_fake,
        "ngp_mlp_bwd": _ngp_mlp_bwd_fake,
    }
    for name, fake in fakes.items():
        torch.library.register_fake(f"nerfgen::{name}", fake)
    torch.library.register_autograd("nerfgen::hash_grid_fwd", _hash_grid_backward, setup_context=_hash_grid_setup_context)
    torch.library.register_autograd("nerfgen::composite_fwd", _composite_backward, setup_context=_composite_setup_context)
    torch.library.register_autograd("nerfgen::plane_fwd", _plane_backward, setup_context=_plane_setup_context)
    torch.library.register_autograd("nerfgen::sparse_interp_fwd", _sparse_interp_backward,
                                    setup_context=_sparse_interp_setup_context)
    torch.library.register_autograd("nerfgen::ngp_mlp_fwd", _ngp_mlp_backward, setup_context=_ngp_mlp_setup_context)
