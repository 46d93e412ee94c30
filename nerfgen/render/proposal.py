r"""Proposal-network sampler (mip-NeRF 360, nerfacto): small density fields say where to sample.

Every ray starts with ``n_proposal_samples[0]`` intervals spaced evenly in a normalised distance
:math:`s \in [0, 1]` between ``near`` and ``far`` (linear, in disparity, or nerfacto's linear then
disparity). Each proposal level evaluates its density net at its intervals, turns the densities
into weights, and draws the next level's intervals from those weights (inverse-CDF sampling of a
padded, annealed histogram); the last draw gives the ``n_samples`` intervals the field shades.
The proposal nets never see the field: they learn from :func:`~nerfgen.render.losses.interlevel_loss`
(their weights must bound the field's), returned by :meth:`ProposalSampler.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from nerfgen.cameras import Rays
from nerfgen.distributed import SINGLE, World
from nerfgen.fields import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.activations import trunc_exp
from nerfgen.fields.encodings import HashEncoding, mlp
from nerfgen.ops import RaySamples
from nerfgen.render.contraction import CONTRACTIONS
from nerfgen.render.losses import distortion_loss, interlevel_loss
from nerfgen.render.renderer import RenderOutput
from nerfgen.render.sampler import DensityFn, Sampler, SigmaFn


@dataclass
class ProposalConfig:
    """Proposal-network sampling (nerfacto's defaults where a CPU allows)."""

    near: float = 0.05
    """Closest ray distance sampled (world units, along unit directions)."""
    far: float = 1000.0
    """Farthest ray distance sampled (world units; large for unbounded captures)."""
    spacing: Literal["piecewise", "disparity", "linear"] = "piecewise"
    """How the first level's intervals are spread between near and far: ``piecewise`` (nerfacto:
    even in distance up to ``piecewise_switch``, even in disparity beyond), ``disparity`` (even in
    1/t; needs near > 0) or ``linear`` (even in t, bounded scenes)."""
    piecewise_switch: float = 0.0
    """Distance where ``piecewise`` spacing turns from linear to disparity; 0: half the inner box's
    largest edge (1 for nerfacto's [-1, 1] box)."""
    n_proposal_samples: tuple[int, ...] = (128, 64)
    """Intervals per ray at each proposal level (one density net per level)."""
    n_samples: int = 32
    """Intervals per ray the field shades."""
    single_jitter: bool = True
    """Jitter all of a ray's samples by one random offset (nerfacto) rather than one per sample."""
    histogram_padding: float = 0.01
    """Added to every proposal weight before resampling, so no interval is ever left unsampled."""
    anneal_steps: int = 1000
    """Steps over which the proposal weights are annealed from flat to sharp (``w ** a``, ``a`` from 0 to 1)."""
    anneal_slope: float = 10.0
    """Slope of the annealing schedule (mip-NeRF 360's bias function; higher: sharp sooner)."""
    share_nets: bool = False
    """One density net for every proposal level (the first level's sizes) rather than one each."""
    net_levels: int = 5
    """Hash-grid levels of a proposal net."""
    net_features: int = 2
    """Features per hash-grid level."""
    net_log2_table_size: int = 17
    """log2 of the rows per level of a proposal net's table."""
    net_base_resolution: int = 16
    """Coarsest hash-grid resolution (over the contracted box)."""
    net_max_resolution: tuple[int, ...] = (128, 256)
    """Finest hash-grid resolution of proposal level ``i``'s net: value ``i``, or the last value
    for levels beyond the list (values past the last level are unused)."""
    net_hidden: int = 16
    """Width of a proposal net's one hidden layer."""
    net_implementation: Literal["auto", "nerfgen", "tcnn"] = "auto"
    """Hash encoding backend of the proposal nets."""
    interlevel_weight: float = 1.0
    """Factor of the interlevel loss in :meth:`ProposalSampler.losses`."""
    distortion_weight: float = 0.002
    """Factor of the distortion loss in :meth:`ProposalSampler.losses` (nerfacto: 0.002; 0: off)."""

    def validate(self, source: str) -> None:
        if not 0 <= self.near < self.far:
            raise ValueError(f"{source}: need 0 <= near < far, got near {self.near}, far {self.far}")
        if self.spacing == "disparity" and self.near <= 0:
            raise ValueError(f"{source}: spacing 'disparity' needs near > 0, got {self.near}")
        if not self.n_proposal_samples or min(self.n_proposal_samples) < 1 or self.n_samples < 1:
            raise ValueError(f"{source}: n_proposal_samples (one or more levels) and n_samples must be >= 1, got "
                             f"{list(self.n_proposal_samples)} and {self.n_samples}")
        if not self.net_max_resolution or min(self.net_max_resolution) < 1:
            raise ValueError(f"{source}: net_max_resolution: expected one or more positive resolutions (one per "
                             f"proposal level), got {list(self.net_max_resolution)}")
        if self.anneal_steps < 0 or self.anneal_slope <= 0 or self.histogram_padding < 0 or self.piecewise_switch < 0:
            raise ValueError(f"{source}: anneal_steps, histogram_padding, piecewise_switch must be >= 0 and "
                             f"anneal_slope > 0")


class ProposalDensity(RadianceField):
    """A proposal level's density net: a small hash grid and one hidden layer, ``trunc_exp`` density.

    It sees space as the field does (:attr:`~nerfgen.fields.RadianceField.contraction`).

    >>> net = ProposalDensity(torch.tensor([-1.0, -1, -1, 1, 1, 1]), log2_table_size=10)
    >>> net.contraction = "linf"
    >>> net.density(torch.tensor([[0.0, 0, 0], [50.0, 0, 0]])).shape
    torch.Size([2])
    """

    accepts = frozenset()

    def __init__(self, aabb: Tensor, levels: int = 5, features: int = 2, log2_table_size: int = 17,
                 base_resolution: int = 16, max_resolution: int = 128, hidden: int = 16,
                 implementation: str = "auto") -> None:
        super().__init__(aabb)
        self.encoding = HashEncoding(levels, features, log2_table_size, base_resolution, max_resolution, implementation)
        self.net = mlp(self.encoding.out_dim, hidden, 1, 1)

    def density(self, positions: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check(cond)
        unit, inside = self.normalize(positions)
        return trunc_exp(self.net(self.encoding(unit))[:, 0] - 1.0) * inside

    def forward(self, positions: Tensor, directions: Tensor | None = None, cond: Conditioning | None = None
                ) -> FieldOutput:
        return FieldOutput(self.density(positions, cond))


def anneal_exponent(step: int, steps: int, slope: float) -> float:
    r"""mip-NeRF 360's weight annealing: :math:`a = \frac{b x}{(b - 1) x + 1}`, :math:`x = \min(1, step / steps)`,
    :math:`b` the slope (0 at step 0, 1 from ``steps`` on)."""
    x = 1.0 if steps <= 0 else min(max(step / steps, 0.0), 1.0)
    return slope * x / ((slope - 1.0) * x + 1.0)


def uniform_edges(n_rays: int, n: int, stratified: bool, single_jitter: bool, device: torch.device) -> Tensor:
    """``[n_rays, n + 1]`` edges of ``n`` even intervals of ``[0, 1]``; when stratified, each inner
    edge moves by up to half an interval (one offset per ray with ``single_jitter``)."""
    edges = torch.linspace(0.0, 1.0, n + 1, device=device).expand(n_rays, n + 1).clone()
    if stratified and n > 1:
        u = torch.rand(n_rays, 1 if single_jitter else n - 1, device=device)
        edges[:, 1:-1] += (u - 0.5) / n
    return edges


def sample_pdf(edges: Tensor, weights: Tensor, n_edges: int, stratified: bool, single_jitter: bool,
               padding: float = 0.01) -> Tensor:
    r"""Draw ``n_edges`` sorted points from the piecewise-constant density of ``weights`` over
    ``edges`` (inverse CDF; nerfacto's ``PDFSampler``).

    The weights get ``padding`` added and are normalised; the points sit at the CDF's inverse of
    :math:`u_j = (j + \xi_j) / n` with :math:`\xi_j = \tfrac12`, or :math:`\xi \sim U[0, 1)` when
    stratified (one per ray with ``single_jitter``).

    Args:
        edges: ``[n_rays, p + 1]`` sorted.
        weights: ``[n_rays, p]`` non-negative (no gradient flows).
        n_edges: points drawn per ray.

    Returns:
        ``[n_rays, n_edges]`` sorted, within ``[edges[:, 0], edges[:, -1]]``.
    """
    n_rays, p = weights.shape
    w = weights.detach() + max(padding, 1e-6)  # positive: every CDF step has width
    cdf = torch.cumsum(w / w.sum(-1, keepdim=True), -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, :-1], torch.ones_like(cdf[:, :1])], -1)  # [n_rays, p + 1]
    j = torch.arange(n_edges, device=edges.device, dtype=edges.dtype)
    xi = (torch.rand(n_rays, 1 if single_jitter else n_edges, device=edges.device, dtype=edges.dtype)
          if stratified else torch.full((1, 1), 0.5, device=edges.device, dtype=edges.dtype))
    u = ((j + xi) / n_edges).expand(n_rays, n_edges).contiguous()  # [n_rays, n_edges]
    hi = torch.searchsorted(cdf, u, right=True).clamp(1, p)
    lo = hi - 1
    c0, c1, e0, e1 = cdf.gather(1, lo), cdf.gather(1, hi), edges.gather(1, lo), edges.gather(1, hi)
    frac = ((u - c0) / (c1 - c0).clamp(min=1e-12)).clamp(0.0, 1.0)
    return (e0 + frac * (e1 - e0)).detach()


def dense_weights(t_edges: Tensor, sigmas: Tensor) -> Tensor:
    r"""``[n_rays, k]`` weights :math:`T_i (1 - e^{-\sigma_i \delta_i})` of ``sigmas [n_rays, k]``
    over intervals ``t_edges [n_rays, k + 1]`` (all of a ray's intervals, in order)."""
    sigma_delta = sigmas * (t_edges[:, 1:] - t_edges[:, :-1])
    before = torch.cumsum(sigma_delta, -1) - sigma_delta
    return torch.exp(-before) * (1.0 - torch.exp(-sigma_delta))


@dataclass
class ProposalLevels:
    """What a call of :meth:`ProposalSampler.sample` with gradients enabled leaves for :meth:`ProposalSampler.losses`.

    Attributes:
        samples: the packed samples it returned.
        edges: ``[n_rays, n_samples + 1]`` their edges in the normalised distance ``s``.
        levels: per proposal level, ``(s edges [n_rays, p + 1], weights [n_rays, p])``; the weights
            are differentiable in that level's net.
    """

    samples: RaySamples
    edges: Tensor
    levels: list[tuple[Tensor, Tensor]] = field(default_factory=list)


class ProposalSampler(Sampler):
    """nerfacto / mip-NeRF 360 proposal sampling: every ray gets ``n_samples`` intervals in
    ``[near, far]``, placed by a chain of proposal density nets.

    The proposal nets' parameters are this module's (``sampler.parameters()``); they train on the
    ``interlevel`` term of :meth:`losses`, computed from the last :meth:`sample` call made with
    gradients enabled.

    Args:
        aabb: ``[6]`` the inner box (uncontracted region) of the scene.
        config: near/far, samples per level, proposal nets and losses.
        contraction: how the proposal nets see space beyond ``aabb`` (as the field does).
    """

    def __init__(self, aabb: Tensor, config: ProposalConfig | None = None, contraction: str = "linf") -> None:
        super().__init__(aabb)
        cfg = config or ProposalConfig()
        cfg.validate("ProposalSampler")
        if contraction not in CONTRACTIONS:
            raise ValueError(f"ProposalSampler: contraction: expected one of {', '.join(CONTRACTIONS)}, "
                             f"got {contraction!r}")
        self.config, self.contraction = cfg, contraction
        n_nets = 1 if cfg.share_nets else len(cfg.n_proposal_samples)
        self.nets = nn.ModuleList([
            ProposalDensity(self.aabb, cfg.net_levels, cfg.net_features, cfg.net_log2_table_size,
                            cfg.net_base_resolution, cfg.net_max_resolution[min(i, len(cfg.net_max_resolution) - 1)],
                            cfg.net_hidden, cfg.net_implementation)
            for i in range(n_nets)
        ])
        for net in self.nets:
            net.contraction = contraction
        half_edge = float((self.aabb[3:] - self.aabb[:3]).max()) / 2
        self.switch = cfg.piecewise_switch or half_edge
        self.anneal = 1.0
        """Exponent of the proposal weights before resampling (set by :meth:`update`; 1 when rendering a loaded model)."""
        self.last: ProposalLevels | None = None
        """The last :meth:`sample` call made with gradients enabled (None before one)."""

    # -- normalised distance s in [0, 1] <-> ray distance t in [near, far] -------------------
    def _g(self, t: Tensor | float) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float32, device=self.aabb.device)
        spacing, tau = self.config.spacing, self.switch
        if spacing == "linear":
            return t
        if spacing == "disparity":
            return -1.0 / t
        return torch.where(t < tau, t / (2 * tau), 1.0 - tau / (2 * t.clamp(min=tau)))

    def _g_inv(self, y: Tensor) -> Tensor:
        spacing, tau = self.config.spacing, self.switch
        if spacing == "linear":
            return y
        if spacing == "disparity":
            return -1.0 / y
        return torch.where(y < 0.5, 2 * tau * y, tau / (2 * (1.0 - y).clamp(min=1e-12)))

    def s_to_t(self, s: Tensor) -> Tensor:
        """Ray distances ``t`` (world units) of normalised distances ``s`` in ``[0, 1]``."""
        g0, g1 = self._g(self.config.near), self._g(self.config.far)
        t = self._g_inv(g0 + s * (g1 - g0))
        return t.clamp(self.config.near, self.config.far)

    def t_to_s(self, t: Tensor) -> Tensor:
        """Normalised distances ``s`` in ``[0, 1]`` of ray distances ``t``."""
        g0, g1 = self._g(self.config.near), self._g(self.config.far)
        return ((self._g(t) - g0) / (g1 - g0)).clamp(0.0, 1.0)

    # -- the Sampler interface -----------------------------------------------------------------
    def occupied(self, positions: Tensor) -> Tensor:
        """All of space with a contraction (the contracted box holds every point), else the box."""
        if self.contraction != "none":
            return torch.ones(positions.shape[:-1], dtype=torch.bool, device=positions.device)
        return super().occupied(positions)

    def update(self, step: int, density_fn: DensityFn | None = None, world: World = SINGLE) -> bool:
        """Set the annealing exponent for training step ``step``; True when it changed."""
        anneal = anneal_exponent(step, self.config.anneal_steps, self.config.anneal_slope)
        changed, self.anneal = anneal != self.anneal, anneal
        return changed

    def sample(self, rays: Rays, sigma_fn: SigmaFn | None = None, stratified: bool = False,
               cond: Conditioning | None = None, defer_termination: bool = False) -> RaySamples:
        """``n_samples`` contiguous intervals on every ray, in ``[near, far]`` (``sigma_fn`` and
        ``cond`` are not used: the proposal nets are static).

        With gradients enabled, the proposal levels' weights (differentiable in the proposal nets)
        are kept for :meth:`losses`.
        """
        cfg, n_rays = self.config, len(rays)
        device = rays.origins.device
        origins, directions = rays.origins[:, None], rays.directions[:, None]  # [n_rays, 1, 3]
        s = uniform_edges(n_rays, cfg.n_proposal_samples[0], stratified, cfg.single_jitter, device)
        levels = []
        for level, n in enumerate(cfg.n_proposal_samples):
            net = self.nets[min(level, len(self.nets) - 1)]
            t = self.s_to_t(s)  # [n_rays, n + 1]
            mids = origins + directions * ((t[:, 1:] + t[:, :-1]) * 0.5)[..., None]  # [n_rays, n, 3]
            sigmas = net.density(mids.reshape(-1, 3)).view(n_rays, n)
            weights = dense_weights(t, sigmas)  # [n_rays, n]
            levels.append((s, weights))
            n_next = cfg.n_proposal_samples[level + 1] if level + 1 < len(cfg.n_proposal_samples) else cfg.n_samples
            s = sample_pdf(s, weights.detach() ** self.anneal, n_next + 1, stratified, cfg.single_jitter,
                           cfg.histogram_padding)
        t = self.s_to_t(s)
        samples = RaySamples(t[:, :-1].reshape(-1), t[:, 1:].reshape(-1),
                             torch.arange(n_rays, device=device).repeat_interleave(cfg.n_samples), n_rays)
        if torch.is_grad_enabled():
            self.last = ProposalLevels(samples, s, levels)
        return samples

    def losses(self, output: RenderOutput) -> dict[str, Tensor]:
        """``interlevel`` (proposal weights must bound ``output``'s, into the proposal nets only) and
        ``distortion`` (of ``output``'s weights, into the field), each times its config weight.

        Args:
            output: what :func:`~nerfgen.render.render_rays` made of the last :meth:`sample` call
                that had gradients enabled (a training step).
        """
        last = self.last
        if last is None or output.samples is not last.samples or output.weights is None:
            raise ValueError("ProposalSampler.losses: output must be the render of the last sample() call made with "
                             "gradients enabled (a training step's render_rays)")
        n_rays, k = last.samples.n_rays, self.config.n_samples
        weights = output.weights
        interlevel = interlevel_loss(last.edges, weights.view(n_rays, k), last.levels)
        if self.config.distortion_weight > 0:
            s0, s1 = last.edges[:, :-1].reshape(-1), last.edges[:, 1:].reshape(-1)
            distortion = distortion_loss(weights, s0, s1, last.samples.ray_indices, n_rays).mean()
        else:
            distortion = weights.new_zeros(())
        return {"interlevel": self.config.interlevel_weight * interlevel,
                "distortion": self.config.distortion_weight * distortion}
