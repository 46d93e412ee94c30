"""A procedural object library for training the built-in diffusion prior: trimesh primitives and
two-object compositions (shape x colour x pattern x size), with template captions.

Frame: z up, the object centred at the origin, inside a sphere of radius ~1 (1.011 at most: the
pyramid's base corners), in a *canonical* orientation (box and pyramid faces face the axes; a
composition's "left" object lies at -y, which is the left seen from the front camera at
azimuth 0, on the +x axis). Everything is deterministic for a seed.

Some shape x colour pairs (:data:`HELD_OUT`) never occur in sampled objects, neither alone nor
in a composition, so prompts such as "a green cube" measure how the prior generalises.

>>> spec = sample_object(np.random.default_rng(0))
>>> objects = build_object(spec)
>>> float(max(np.linalg.norm(o.mesh.vertices, axis=1).max() for o in objects)) <= 1.02
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from nerfgen.scenes.materials import Material
from nerfgen.scenes.tabletop import SceneObject

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.12, 0.62, 0.16),
    "blue": (0.10, 0.25, 0.88),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (0.97, 0.50, 0.06),
    "purple": (0.50, 0.15, 0.72),
    "pink": (0.97, 0.52, 0.72),
    "cyan": (0.10, 0.76, 0.82),
    "brown": (0.45, 0.27, 0.10),
    "white": (0.93, 0.93, 0.93),
    "grey": (0.50, 0.50, 0.50),
    "black": (0.08, 0.08, 0.08),
}
"""Named colours (linear RGB albedo in [0, 1]); each object jitters its colour a little."""
SHAPES: dict[str, tuple[str, ...]] = {
    "cube": ("cube", "box", "block"),
    "sphere": ("sphere", "ball"),
    "cylinder": ("cylinder",),
    "cone": ("cone",),
    "torus": ("torus", "donut", "ring"),
    "capsule": ("capsule", "pill"),
    "pyramid": ("pyramid",),
}
"""Shape -> the words captions use for it (the first is the canonical name)."""
PATTERNS = ("solid", "striped", "checkered")
"""Surface patterns (``scenes.materials`` bands / checker); all shaded matte (Lambert)."""
HELD_OUT: tuple[tuple[str, str], ...] = (
    ("cube", "green"), ("sphere", "yellow"), ("cylinder", "purple"), ("cone", "blue"),
    ("torus", "red"), ("capsule", "orange"), ("pyramid", "pink"),
)
"""(shape, colour) pairs left out of training: one colour per shape, each colour once."""
TRAINED_PAIRS: tuple[tuple[str, str], ...] = (
    ("cube", "red"), ("sphere", "blue"), ("cylinder", "green"), ("cone", "yellow"),
    ("torus", "purple"), ("capsule", "pink"), ("pyramid", "orange"),
)
"""Pairs seen in training with the same shapes and colours as :data:`HELD_OUT`, paired differently
(what fidelity measurements compare the held-out pairs with)."""
RELATIONS = ("on", "left of")
"""Two-object compositions: A stacked on B, or A to the left of B (seen from the front)."""
_COLOUR_WORDS = {"grey": ("grey", "gray")}


@dataclass(frozen=True)
class Part:
    """One primitive of an object: shape, colour name, pattern, second colour, scale."""

    shape: str
    colour: str
    pattern: str = "solid"
    colour2: str = "white"
    scale: float = 1.0


@dataclass(frozen=True)
class ObjectSpec:
    """What to build: one part, or two parts in a relation; ``seed`` jitters colours."""

    parts: tuple[Part, ...]
    relation: str = ""
    seed: int = 0


def _pyramid() -> trimesh.Trimesh:
    h, s = 1.1, 0.6
    vertices = np.array([[-s, -s, 0], [s, -s, 0], [s, s, 0], [-s, s, 0], [0, 0, h]], dtype=np.float64)
    faces = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    return trimesh.Trimesh(vertices - [0, 0, 0.5 * h], faces, process=True)


def primitive(shape: str) -> tuple[trimesh.Trimesh, bool]:
    """Canonical mesh of ``shape`` centred at the origin (bounding radius <= 1), and whether it
    is shaded smooth."""
    if shape == "cube":
        return trimesh.creation.box(extents=(1.1, 1.1, 1.1)), False
    if shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=0.75), True
    if shape == "cylinder":
        return trimesh.creation.cylinder(radius=0.55, height=1.2, sections=48), False
    if shape == "cone":
        cone = trimesh.creation.cone(radius=0.65, height=1.3, sections=48)
        cone.apply_translation((0, 0, -0.65))
        return cone, False
    if shape == "torus":
        return trimesh.creation.torus(0.6, 0.25, major_sections=48, minor_sections=16), True
    if shape == "capsule":
        return trimesh.creation.capsule(height=0.8, radius=0.4, count=[24, 24]), True
    if shape == "pyramid":
        return _pyramid(), False
    raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(SHAPES)}")


def _material(part: Part, rng: np.random.Generator) -> Material:
    colour = np.clip(np.asarray(COLOURS[part.colour]) + rng.uniform(-0.04, 0.04, 3), 0, 1)
    if part.pattern == "solid":
        return Material(color=tuple(colour))
    colour2 = tuple(COLOURS[part.colour2])
    if part.pattern == "striped":
        return Material(color=tuple(colour), pattern="bands", color2=colour2, period=0.4)
    return Material(color=tuple(colour), pattern="checker", color2=colour2, count=8)


def _placed(part: Part, offset: np.ndarray, rng: np.random.Generator, factor: float = 1.0) -> SceneObject:
    mesh, smooth = primitive(part.shape)
    local_to_world = trimesh.transformations.translation_matrix(offset) @ np.diag([part.scale * factor] * 3 + [1.0])
    mesh.apply_transform(local_to_world)
    # patterns are evaluated in the unscaled canonical frame, so stripes keep their count
    return SceneObject(part.shape, mesh, _material(part, rng), np.linalg.inv(local_to_world), smooth)


def build_object(spec: ObjectSpec) -> list[SceneObject]:
    """Meshes of ``spec`` in world space, centred at the origin and inside the unit sphere."""
    rng = np.random.default_rng([spec.seed, 0x0B1EC7])
    if len(spec.parts) == 1:
        return [_placed(spec.parts[0], np.zeros(3), rng)]
    a, b = spec.parts
    factor = 0.55
    ext_a = primitive(a.shape)[0].bounds * a.scale * factor  # [2, 3]
    ext_b = primitive(b.shape)[0].bounds * b.scale * factor
    if spec.relation == "on":  # a on top of b: b's top touches a's bottom
        za, zb = -ext_a[0, 2], -ext_b[1, 2]
        mid = 0.5 * ((za + ext_a[1, 2]) + (zb + ext_b[0, 2]))
        offsets = (np.array([0, 0, za - mid]), np.array([0, 0, zb - mid]))
    elif spec.relation == "left of":  # a at -y, b at +y, a small gap
        ya, yb = -ext_a[1, 1] - 0.04, -ext_b[0, 1] + 0.04
        mid = 0.5 * ((ya + ext_a[0, 1]) + (yb + ext_b[1, 1]))
        offsets = (np.array([0, ya - mid, 0]), np.array([0, yb - mid, 0]))
    else:
        raise ValueError(f"unknown relation {spec.relation!r}; expected one of {RELATIONS}")
    objects = [_placed(a, offsets[0], rng, factor), _placed(b, offsets[1], rng, factor)]
    worst = max(float(np.linalg.norm(o.mesh.vertices, axis=1).max()) for o in objects)
    if worst > 1.0:  # shrink about the origin to fit the unit sphere
        s = 0.99 / worst
        return [_placed(p, o * s, rng, factor * s) for p, o in zip(spec.parts, offsets)]
    return objects


def _sample_part(rng: np.random.Generator, scale: float) -> Part:
    while True:
        shape, colour = str(rng.choice(list(SHAPES))), str(rng.choice(list(COLOURS)))
        if (shape, colour) not in HELD_OUT:
            break
    pattern = str(rng.choice(PATTERNS, p=[0.7, 0.15, 0.15]))
    colour2 = "white" if rng.random() < 0.5 else str(rng.choice([c for c in COLOURS if c != colour]))
    return Part(shape, colour, pattern, colour2 if pattern != "solid" else "white", scale)


def sample_object(rng: np.random.Generator, composition_rate: float = 0.25) -> ObjectSpec:
    """A random object: one part (scale 0.7-1.0) or, with ``composition_rate``, two parts.
    Held-out shape x colour pairs are never drawn."""
    seed = int(rng.integers(1 << 31))
    if rng.random() >= composition_rate:
        return ObjectSpec((_sample_part(rng, float(rng.uniform(0.7, 1.0))),), seed=seed)
    relation = str(rng.choice(RELATIONS))
    return ObjectSpec((_sample_part(rng, 1.0), _sample_part(rng, 1.0)), relation, seed)


def _size_word(scale: float) -> str:
    return "small " if scale < 0.78 else "large " if scale > 0.92 else ""


def _noun_phrase(part: Part, rng: np.random.Generator, size: bool) -> str:
    shape = str(rng.choice(SHAPES[part.shape]))
    colour = str(rng.choice(_COLOUR_WORDS.get(part.colour, (part.colour,))))
    size_word = _size_word(part.scale) if size else ""
    if part.pattern == "solid":
        return f"{size_word}{colour} {shape}"
    kind = "stripes" if part.pattern == "striped" else "checks"
    return str(rng.choice([f"{size_word}{colour} and {part.colour2} {part.pattern} {shape}",
                           f"{size_word}{colour} {shape} with {part.colour2} {kind}",
                           f"{size_word}{colour} {part.pattern} {shape}"]))


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def pair_caption(shape: str, colour: str) -> str:
    """The plain caption of one solid part, e.g. "an orange capsule"."""
    return _article(f"{colour} {shape}")


def caption(spec: ObjectSpec, rng: np.random.Generator) -> str:
    """One caption of ``spec`` from the templates (random wording, size words, synonyms)."""
    size = len(spec.parts) == 1 and rng.random() < 0.5
    phrases = [_article(_noun_phrase(p, rng, size)) for p in spec.parts]
    if len(phrases) == 1:
        template = str(rng.choice(["{a}", "{a}", "a 3d render of {a}", "a photo of {a}", "{a}, white background"]))
        return template.format(a=phrases[0])
    a, b = phrases
    if spec.relation == "on":
        return str(rng.choice([f"{a} on {b}", f"{a} on top of {b}", f"{a} stacked on {b}"]))
    return str(rng.choice([f"{a} to the left of {b}", f"{a} left of {b}", f"{b} to the right of {a}"]))


def captions(spec: ObjectSpec, n: int, seed: int = 0) -> list[str]:
    """``n`` captions of ``spec`` (repeats possible), deterministic for ``(spec.seed, seed)``."""
    rng = np.random.default_rng([spec.seed, seed, 0xCA9])
    return [caption(spec, rng) for _ in range(n)]
