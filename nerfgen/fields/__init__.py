"""Radiance fields, their conditioning, and the registry that picks one by name (composition of
several fields: :mod:`nerfgen.render.composition`)."""

from __future__ import annotations

from torch import Tensor

from nerfgen.fields.base import Conditioning, FieldOutput, RadianceField
from nerfgen.fields.deform import DeformField, DeformFieldConfig
from nerfgen.fields.flow import SceneFlowField, SceneFlowFieldConfig
from nerfgen.fields.kplanes import KPlanesField, KPlanesFieldConfig
from nerfgen.fields.ngp import NGPField, NGPFieldConfig
from nerfgen.fields.sdf import SDFField, SDFFieldConfig
from nerfgen.fields.vanilla import VanillaField, VanillaFieldConfig

FIELDS: dict[str, tuple[type[RadianceField], type]] = {
    "ngp": (NGPField, NGPFieldConfig),
    "vanilla": (VanillaField, VanillaFieldConfig),
    "kplanes": (KPlanesField, KPlanesFieldConfig),
    "deform": (DeformField, DeformFieldConfig),
    "nsff": (SceneFlowField, SceneFlowFieldConfig),
    "sdf": (SDFField, SDFFieldConfig),
}
"""Registry: field name -> (class, config dataclass). ``kplanes``, ``deform`` and ``nsff`` are
dynamic (they need ``Conditioning.time``)."""


def field_config(name: str, options: dict | None = None, source: str = "field_options"):
    """The config dataclass of field ``name`` built from ``options`` (every key and value checked,
    errors naming ``source``)."""
    from nerfgen.config import build_config

    if name not in FIELDS:
        raise ValueError(f"{source}: unknown field {name!r}; expected one of {', '.join(sorted(FIELDS))}")
    return build_config(FIELDS[name][1], options or {}, source)


def build_field(name: str, aabb: Tensor, options: dict | None = None) -> RadianceField:
    """Build the field registered as ``name`` over ``aabb`` with config ``options``."""
    return FIELDS[name][0](aabb, field_config(name, options))


__all__ = ["FIELDS", "Conditioning", "DeformField", "DeformFieldConfig", "FieldOutput", "KPlanesField",
           "KPlanesFieldConfig", "NGPField", "NGPFieldConfig", "RadianceField", "SceneFlowField", "SceneFlowFieldConfig",
           "SDFField", "SDFFieldConfig",
           "VanillaField", "VanillaFieldConfig", "build_field", "field_config"]
