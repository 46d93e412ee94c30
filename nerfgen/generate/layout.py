r"""Boxes for the objects of a scene: :class:`Layout` (a JSON file, editable by hand) and
:func:`check_layout`, which lists what a layout breaks; :func:`solve_layout`
(:mod:`nerfgen.generate.layout_solver`) places a :class:`ScenePlan`'s objects as its relations say.

World frame: +z up; the front camera sits on +x looking towards -x, its image right is +y. Object
``k`` lives in a cube: its canonical frame :math:`[-1, 1]^3` maps to the world by
:math:`x_w = R_z(\theta_k)(s_k x_l) + c_k` (``rotation`` :math:`\theta` in degrees about +z,
``size`` :math:`s` the half side in world units, ``center`` :math:`c`).

>>> from nerfgen.generate.scene_prompt import parse_scene
>>> from nerfgen.generate.layout_solver import solve_layout
>>> layout = solve_layout(parse_scene("a red cube on a blue sphere"))
>>> [o.name for o in layout.objects], check_layout(layout)
(['cube', 'sphere'], [])
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import torch
from torch import Tensor

from nerfgen.files import read_json, write_json
from nerfgen.generate.scene_prompt import RELATIONS, Relation, object_name

LAYOUT_VERSION = 1
"""The ``version`` written in layout files (and the only one read)."""
LAYOUT_FILE = "layout.json"
"""A scene's layout in its run directory (as settled by the last checkpoint, or at the end)."""
_AXIS_SIGN = {"left of": (1, -1), "right of": (1, 1), "in front of": (0, 1), "behind": (0, -1), "next to": (1, -1)}
"""Horizontal kind -> (axis: 0 x / 1 y, sign of subject minus object; for next to the side tried first)."""


@dataclass
class LayoutObject:
    """One object's box in the world (the frame is in the module docstring).

    Attributes:
        prompt: the object's own prompt, e.g. "a red cube".
        center: box centre ``(x, y, z)``, world units.
        size: half side of the cube, world units (> 0).
        rotation: degrees about +z.
        hidden: left out of the scene (:meth:`Layout.present`), kept in the file.
        name: a short unique label ("cube", "cube-2").
    """

    prompt: str
    center: tuple[float, float, float]
    size: float
    rotation: float = 0.0
    hidden: bool = False
    name: str = ""


@dataclass
class Layout:
    """A scene prompt's objects in their boxes, and the relations they were placed by."""

    prompt: str
    objects: list[LayoutObject]
    relations: list[Relation]

    def to_dict(self) -> dict:
        """The JSON form (``version``, ``prompt``, ``objects``, ``relations``)."""
        objects = [{"name": o.name, "prompt": o.prompt, "center": list(o.center), "size": o.size,
                    "rotation": o.rotation, "hidden": o.hidden} for o in self.objects]
        relations = [{"subject": r.subject, "relation": r.kind, "object": r.object} for r in self.relations]
        return {"version": LAYOUT_VERSION, "prompt": self.prompt, "objects": objects, "relations": relations}

    @classmethod
    def from_dict(cls, data: dict, source: str = "layout") -> Layout:
        """Read the JSON form; every bad value is one ValueError naming ``source`` and the key.
        Optional: ``name`` (the prompt's last word, "-2", "-3" on repeats), ``rotation`` (0),
        ``hidden`` (false), ``relations`` (none), ``prompt`` (the object prompts joined by " and ")."""
        if not isinstance(data, dict) or not isinstance(data.get("objects"), list) or not data["objects"]:
            raise ValueError(f"{source}: expected a JSON object whose 'objects' lists at least one object")
        if data.get("version", LAYOUT_VERSION) != LAYOUT_VERSION:
            raise ValueError(f"{source}: version must be {LAYOUT_VERSION}, got {data['version']!r}")
        if not isinstance(data.get("relations", []), list):
            raise ValueError(f"{source}: relations must be a list, got {data['relations']!r}")
        objects = [_object(item, f"objects[{i}]", source) for i, item in enumerate(data["objects"])]
        relations = [_relation(item, f"relations[{i}]", len(objects), source)
                     for i, item in enumerate(data.get("relations", []))]
        prompt = data.get("prompt", " and ".join(o.prompt for o in objects))
        return cls(_text(prompt, "prompt", source), _named(objects, source), relations)

    def edited(self, index: int, *, center=None, size=None, rotation=None, hidden=None) -> Layout:
        """A copy with object ``index`` changed (arguments left None keep their values)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.objects):
            raise IndexError(f"Layout.edited: index must be in [0, {len(self.objects)}), got {index!r}")
        changes = {"center": (center, _center), "size": (size, _positive), "rotation": (rotation, _number),
                   "hidden": (hidden, _flag)}
        new = {key: check(value, f"objects[{index}].{key}", "Layout.edited")
               for key, (value, check) in changes.items() if value is not None}
        objects = [replace(o, **new) if k == index else replace(o) for k, o in enumerate(self.objects)]
        return Layout(self.prompt, objects, list(self.relations))

    def _arrays(self) -> tuple[Tensor, Tensor, Tensor]:
        """float64 ``rotation [K]`` (degrees), ``size [K]``, ``center [K, 3]``."""
        return tuple(torch.tensor([getattr(o, key) for o in self.objects], dtype=torch.float64)
                     for key in ("rotation", "size", "center"))

    def object_to_world(self) -> Tensor:
        """``[K, 4, 4]`` float32, canonical -> world: ``[[size R_z(rotation), center], [0, 0, 0, 1]]``."""
        rotation, size, center = self._arrays()
        m = torch.zeros(len(self.objects), 4, 4, dtype=torch.float64)
        m[:, :3, :3], m[:, :3, 3], m[:, 3, 3] = _rot_z(rotation) * size[:, None, None], center, 1.0
        return m.float()

    def world_to_object(self) -> Tensor:
        """``[K, 3, 4]`` float32 ``[A | b]``: ``x_local = A x + b`` with ``A = R_z(-rotation) / size``,
        ``b = -A center`` (the box is ``[-1, 1]^3`` in ``x_local``)."""
        rotation, size, center = self._arrays()
        a = _rot_z(-rotation) / size[:, None, None]
        return torch.cat([a, -a @ center[:, :, None]], dim=2).float()

    def present(self) -> Tensor:
        """``[K]`` bool: the objects not hidden."""
        return torch.tensor([not o.hidden for o in self.objects], dtype=torch.bool)

    def sizes(self) -> Tensor:
        """``[K]`` float32 half sides, world units."""
        return torch.tensor([o.size for o in self.objects], dtype=torch.float32)

    def bounding_radius(self) -> float:
        """Radius about the origin of a sphere holding every box whole (hidden ones too):
        max over objects of ``|center| + size * sqrt(3)``."""
        return max(math.hypot(*o.center) + o.size * math.sqrt(3) for o in self.objects)


def _rot_z(degrees: Tensor) -> Tensor:
    """``[K]`` angles in degrees -> ``[K, 3, 3]`` rotations about +z."""
    c, s = torch.cos(torch.deg2rad(degrees)), torch.sin(torch.deg2rad(degrees))
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(-1, 3, 3)


def _number(value, where: str, source: str, positive: bool = False) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (positive and value <= 0)):
        raise ValueError(f"{source}: {where} must be a {'positive' if positive else 'finite'} number, got {value!r}")
    return float(value)


def _positive(value, where: str, source: str) -> float:
    return _number(value, where, source, positive=True)


def _center(value, where: str, source: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{source}: {where} must be 3 numbers [x, y, z], got {value!r}")
    x, y, z = (_number(v, where, source) for v in value)
    return x, y, z


def _flag(value, where: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{source}: {where} must be true or false, got {value!r}")
    return value


def _text(value, where: str, source: str) -> str:
    if not isinstance(value, str) or not re.search(r"\w", value):
        raise ValueError(f"{source}: {where} must be a non-empty string, got {value!r}")
    return value


def _needs(item, keys: tuple[str, ...], where: str, source: str) -> dict:
    """``item`` when it is a dict holding ``keys``; else an error naming the first key missing."""
    if not isinstance(item, dict):
        raise ValueError(f"{source}: {where} must be an object with {', '.join(map(repr, keys))}, got {item!r}")
    for key in keys:
        if key not in item:
            raise ValueError(f"{source}: {where}.{key} is missing")
    return item


def _object(item, where: str, source: str) -> LayoutObject:
    item = _needs(item, ("prompt", "center", "size"), where, source)
    return LayoutObject(_text(item["prompt"], f"{where}.prompt", source),
                        _center(item["center"], f"{where}.center", source),
                        _positive(item["size"], f"{where}.size", source),
                        _number(item.get("rotation", 0.0), f"{where}.rotation", source),
                        _flag(item.get("hidden", False), f"{where}.hidden", source),
                        _text(item["name"], f"{where}.name", source) if "name" in item else "")


def _relation(item, where: str, n: int, source: str) -> Relation:
    item = _needs(item, ("subject", "relation", "object"), where, source)
    relation = Relation(item["subject"], item["relation"], item["object"])
    _check_relation(relation, n, where, source)
    return relation


def _check_relation(relation: Relation, n: int, where: str, source: str) -> None:
    if relation.kind not in RELATIONS:
        raise ValueError(f"{source}: {where}.relation must be one of {list(RELATIONS)}, got {relation.kind!r}")
    for key, value in (("subject", relation.subject), ("object", relation.object)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
            raise ValueError(f"{source}: {where}.{key} must be an object index in [0, {n}), got {value!r}")
    if relation.subject == relation.object:
        raise ValueError(f"{source}: {where} relates object {relation.subject} to itself")


def _named(objects: list[LayoutObject], source: str) -> list[LayoutObject]:
    """``objects`` with their empty names filled (unique: "cube", "cube-2", ...); duplicates refused."""
    taken: dict[str, int] = {}
    for k, o in enumerate(objects):
        if o.name in taken:
            raise ValueError(f"{source}: objects[{k}].name {o.name!r} is already the name of objects[{taken[o.name]}]")
        if o.name:
            taken[o.name] = k
    for k, o in enumerate(objects):
        if not o.name:
            base, n = object_name(o.prompt), 1
            o.name = base
            while o.name in taken:
                n += 1
                o.name = f"{base}-{n}"
            taken[o.name] = k
    return objects


def write_layout(path: str | Path, layout: Layout) -> None:
    """Write ``layout`` as JSON (atomically)."""
    write_json(Path(path), layout.to_dict())


def read_layout(path: str | Path) -> Layout:
    """Read a layout file; FileNotFoundError / ValueError name the file (and the bad key)."""
    return Layout.from_dict(read_json(Path(path)), str(path))


def check_layout(layout: Layout, tol: float = 1e-4) -> list[str]:
    """What in ``layout`` breaks its own relations or lets two boxes overlap (empty: all hold).

    A on B: A's bottom within ``tol`` of B's top and A's centre over B's top face; left of /
    right of / in front of / behind: the centres in that order along y / x by more than ``tol``;
    next to: horizontal centre distance at most twice the two sizes; boxes (rotated about z)
    must not overlap by more than ``tol``.
    """
    problems = []
    for r in layout.relations:
        a, b = layout.objects[r.subject], layout.objects[r.object]
        d = [a.center[i] - b.center[i] for i in range(3)]
        if r.kind in ("on", "under"):
            top, bottom, sign = (a, b, 1) if r.kind == "on" else (b, a, -1)
            t = math.radians(bottom.rotation)
            local = (math.cos(t) * d[0] + math.sin(t) * d[1], -math.sin(t) * d[0] + math.cos(t) * d[1])
            holds = (abs(sign * d[2] - top.size - bottom.size) <= tol
                     and max(map(abs, local)) <= bottom.size + tol)
        elif r.kind == "next to":
            holds = math.hypot(d[0], d[1]) <= 2 * (a.size + b.size) + tol
        else:
            axis, sign = _AXIS_SIGN[r.kind]
            holds = sign * d[axis] > tol
        if not holds:
            problems.append(f"{a.name!r} {r.kind} {b.name!r} does not hold")
    for a, b in combinations(layout.objects, 2):
        depth = _overlap(a, b)
        if depth > tol:
            problems.append(f"{a.name!r} and {b.name!r} overlap by {depth:.4g}")
    return problems


def _overlap(a: LayoutObject, b: LayoutObject) -> float:
    """How deep two boxes (cubes rotated about z) overlap; <= 0 when they are apart or touch
    (separating axes: z and the four side normals)."""
    d = [a.center[i] - b.center[i] for i in range(3)]
    depth = a.size + b.size - abs(d[2])
    for angle in (a.rotation, a.rotation + 90, b.rotation, b.rotation + 90):
        t = math.radians(angle)
        extent = sum(o.size * (abs(math.cos(t - math.radians(o.rotation))) + abs(math.sin(t - math.radians(o.rotation))))
                     for o in (a, b))
        depth = min(depth, extent - abs(math.cos(t) * d[0] + math.sin(t) * d[1]))
    return depth
