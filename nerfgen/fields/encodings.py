"""Input encodings: hash grid (instant-ngp), frequency (NeRF) and spherical harmonics."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nerfgen.ops import hash_grid_encode, level_resolutions, level_strides


def _tcnn_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import tinycudann  # noqa: F401
    except Exception:  # tinycudann raises plain exceptions when CUDA is missing
        return False
    return True


class HashEncoding(nn.Module):
    """Multiresolution hash encoding of points in ``[0, 1]^3``.

    Args:
        n_levels: number of grid levels :math:`L`.
        n_features: features per level :math:`F`.
        log2_table_size: :math:`\\log_2 T`, rows per level.
        base_resolution: coarsest grid resolution.
        max_resolution: finest grid resolution.
        implementation: ``"nerfgen"`` (nerfgen's kernels, or their pure-torch twin as
            ``NERFGEN_BACKEND`` decides), ``"tcnn"`` (tiny-cuda-nn, CUDA only) or ``"auto"`` (tcnn
            when it imports and CUDA is present, else nerfgen).
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features: int = 2,
        log2_table_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        self.n_levels, self.n_features, self.log2_table_size = n_levels, n_features, log2_table_size
        self.out_dim = n_levels * n_features
        resolutions = level_resolutions(n_levels, base_resolution, max_resolution)
        use_tcnn = implementation == "tcnn" or (implementation == "auto" and _tcnn_available())
        self.tcnn = None
        if use_tcnn:
            import tinycudann as tcnn

            growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(n_levels - 1, 1))
            self.tcnn = tcnn.Encoding(3, {
                "otype": "HashGrid", "n_levels": n_levels, "n_features_per_level": n_features,
                "log2_hashmap_size": log2_table_size, "base_resolution": base_resolution,
                "per_level_scale": growth,
            })
            return
        self.register_buffer("resolutions", torch.tensor(resolutions, dtype=torch.float32), persistent=False)
        self.register_buffer("strides", level_strides(resolutions, log2_table_size), persistent=False)
        table = torch.empty(n_levels << log2_table_size, n_features).uniform_(-1e-4, 1e-4)
        self.table = nn.Parameter(table)

    def forward(self, positions: Tensor) -> Tensor:
        """``positions [n, 3]`` in ``[0, 1]`` -> ``[n, n_levels * n_features]``."""
        if self.tcnn is not None:
            return self.tcnn(positions).float()
        return hash_grid_encode(positions, self.table, self.resolutions, self.strides, self.log2_table_size)


class FrequencyEncoding(nn.Module):
    r"""NeRF's positional encoding :math:`(x, \sin(2^k \pi x), \cos(2^k \pi x))_{k<K}`."""

    def __init__(self, n_frequencies: int, include_input: bool = True) -> None:
        super().__init__()
        self.include_input = include_input
        self.register_buffer("freqs", (2.0 ** torch.arange(n_frequencies)) * math.pi, persistent=False)
        self.out_dim = 3 * (2 * n_frequencies + int(include_input))

    def forward(self, x: Tensor) -> Tensor:
        """``x [n, 3]`` -> ``[n, out_dim]``."""
        scaled = (x[:, None, :] * self.freqs[:, None]).reshape(x.shape[0], self.freqs.numel() * x.shape[1])
        parts = [x] if self.include_input else []
        return torch.cat(parts + [torch.sin(scaled), torch.cos(scaled)], -1)


class SHEncoding(nn.Module):
    """Real spherical harmonics of unit directions up to degree 3 (16 coefficients)."""

    out_dim = 16

    def forward(self, d: Tensor) -> Tensor:
        """``d [n, 3]`` unit directions -> ``[n, 16]``."""
        x, y, z = d.unbind(-1)
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        return torch.stack([
            torch.full_like(x, 0.28209479177387814),
            -0.48860251190291987 * y,
            0.48860251190291987 * z,
            -0.48860251190291987 * x,
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ], -1)


def tcnn_mlp(in_dim: int, hidden: int, n_hidden_layers: int, out_dim: int) -> nn.Module:
    """:func:`mlp`'s network as tiny-cuda-nn's FullyFusedMLP (CutlassMLP for widths it does not
    take), float32 out; only where tinycudann imports (CUDA)."""
    import tinycudann as tcnn

    kind = "FullyFusedMLP" if hidden in (16, 32, 64, 128) else "CutlassMLP"
    net = tcnn.Network(in_dim, out_dim, {"otype": kind, "activation": "ReLU", "output_activation": "None",
                                         "n_neurons": hidden, "n_hidden_layers": n_hidden_layers})
    return _Float32(net)


class _Float32(nn.Module):
    """A module whose (half-precision) output is returned as float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x).float()


def mlp(in_dim: int, hidden: int, n_hidden_layers: int, out_dim: int) -> nn.Sequential:
    """ReLU MLP with ``n_hidden_layers`` hidden layers of width ``hidden`` (no output activation)."""
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(dim, hidden), nn.ReLU(inplace=True)]
        dim = hidden
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


def fused_layers(density_net: nn.Sequential, color_net: nn.Sequential) -> tuple[list[Tensor], list[Tensor], int]:
    """Weights and biases of a density then a colour network's linear layers, and how many are the
    density network's: the layout :func:`~nerfgen.ops.mlp.ngp_mlp` takes."""
    density = [m for m in density_net if isinstance(m, nn.Linear)]
    linears = density + [m for m in color_net if isinstance(m, nn.Linear)]
    return [m.weight for m in linears], [m.bias for m in linears], len(density)
