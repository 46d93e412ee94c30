"""Radiance fields and the registry that picks one by name."""

from __future__ import annotations

from torch import Tensor

from nerfgen.fields.base import RadianceField
from nerfgen.fields.ngp import NGPField, NGPFieldConfig
from nerfgen.fields.vanilla import VanillaField, VanillaFieldConfig

FIELDS: dict[str, tuple[type[RadianceField], type]] = {
    "ngp": (NGPField, NGPFieldConfig),
    "vanilla": (VanillaField, VanillaFieldConfig),
}
"""Registry: field name -> (class, config dataclass)."""


def build_field(name: str, aabb: Tensor, options: dict | None = None) -> RadianceField:
    """Build the field registered as ``name`` over ``aabb`` with config ``options``."""
    if name not in FIELDS:
        raise ValueError(f"unknown field {name!r}; choose one of {sorted(FIELDS)}")
    cls, config_cls = FIELDS[name]
    return cls(aabb, config_cls(**(options or {})))


__all__ = ["FIELDS", "NGPField", "NGPFieldConfig", "RadianceField", "VanillaField", "VanillaFieldConfig", "build_field"]
