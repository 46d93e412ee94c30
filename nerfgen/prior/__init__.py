"""Diffusion priors that score rendered images, chosen by name.

Each entry is imported only when asked for (diffusers is optional; the built-in prior needs none
of it).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nerfgen.cameras import Views
from nerfgen.prior.base import DiffusionPrior, PromptEmbedding, SDSOutput

PRIORS: dict[str, str] = {
    "builtin": "nerfgen.prior.builtin:load_builtin_prior",
    "stable-diffusion": "nerfgen.prior.stable_diffusion:load_stable_diffusion",
    "deepfloyd-if": "nerfgen.prior.deepfloyd:load_deepfloyd_if",
}
"""Registry: prior name -> ``module:function(model: str | Path | None, device: str) -> DiffusionPrior``."""


def build_prior(name: str, model: str | Path | None = None, device: str = "cpu") -> DiffusionPrior:
    """Load the prior registered as ``name`` (weights from ``model``, a local path, or its default)."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
    module, function = PRIORS[name].split(":")
    return getattr(importlib.import_module(module), function)(model, device)


__all__ = ["PRIORS", "DiffusionPrior", "PromptEmbedding", "SDSOutput", "Views", "build_prior"]
