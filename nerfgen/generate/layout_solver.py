"""Placing a :class:`~nerfgen.generate.scene_prompt.ScenePlan`'s objects in boxes as its relations
say (:func:`solve_layout`); the frame is :mod:`nerfgen.generate.layout`'s.

>>> from nerfgen.generate.scene_prompt import parse_scene
>>> layout = solve_layout(parse_scene("a blue sphere to the left of a small red cube"))
>>> [round(o.center[1], 2) for o in layout.objects], [round(o.size, 2) for o in layout.objects]
([-0.4, 0.57], [0.57, 0.4])
"""

from __future__ import annotations

from itertools import accumulate, combinations

import torch

from nerfgen.generate.layout import _AXIS_SIGN, Layout, LayoutObject, _check_relation, _named, _number, _positive
from nerfgen.generate.scene_prompt import ScenePlan, object_words

_SIZE_FACTORS = {"small": 0.7, "large": 1.3}
"""Size word (:func:`~nerfgen.generate.scene_prompt.object_words`) -> factor of an object's half side."""


def solve_layout(plan: ScenePlan, radius: float = 1.0, gap: float = 0.0) -> Layout:
    """Boxes for ``plan``'s objects that satisfy its relations (rotation 0).

    Sizes are 1, times 0.7 for small / tiny / little and 1.3 for large / big / huge. "on" / "under"
    stack objects, each centred on its support, its bottom on the support's top; the stacks stand
    on one floor. Horizontal relations order stacks (a stacked object's relations are its
    stack's): along y for left / right / next to (the object at +y, the subject's other side when
    that contradicts), along x for in front / behind. Stacks joined front to back share y, those
    joined left to right share x; stacks that still overlap (unrelated ones) go side by side
    along +y in plan order. Last, the boxes' bounding box is centred on the origin and everything
    scaled so that max over objects of ``|center| + size`` is ``radius``.

    Args:
        plan: objects and relations (:func:`nerfgen.generate.scene_prompt.parse_scene`).
        radius: world units.
        gap: least separation of footprints, in units of a default object's half side (scaled
            with the layout).

    Raises:
        ValueError: an object resting on two or holding two, or contradictory relations (named).
    """
    n = len(plan.objects)
    if n == 0:
        raise ValueError("solve_layout: the plan has no objects")
    radius, gap = _positive(radius, "radius", "solve_layout"), _number(gap, "gap", "solve_layout")
    if gap < 0:
        raise ValueError(f"solve_layout: gap must be >= 0, got {gap!r}")
    for i, relation in enumerate(plan.relations):
        _check_relation(relation, n, f"relations[{i}]", "solve_layout")
    sizes = [_SIZE_FACTORS.get(object_words(p)[2], 1.0) for p in plan.objects]
    above = _supports(plan)
    stacks = {k: _chain(k, above) for k in range(n) if k not in above.values()}  # base -> bottom to top
    base = {k: b for b, chain in stacks.items() for k in chain}
    width = {b: max(sizes[k] for k in chain) for b, chain in stacks.items()}
    xy = _place(plan, base, width, gap)
    centers = torch.zeros(n, 3, dtype=torch.float64)
    for b, chain in stacks.items():
        for k, bottom in zip(chain, accumulate((2 * sizes[k] for k in chain), initial=0.0)):
            centers[k] = torch.tensor([*xy[b], bottom + sizes[k]])
    half = torch.tensor(sizes, dtype=torch.float64)[:, None]
    centers -= ((centers - half).amin(dim=0) + (centers + half).amax(dim=0)) / 2
    scale = radius / float((centers.norm(dim=1) + half[:, 0]).max())
    objects = [LayoutObject(p, tuple((scale * c).tolist()), scale * s) for p, c, s in zip(plan.objects, centers, sizes)]
    return Layout(plan.prompt, _named(objects, "solve_layout"), list(plan.relations))


def _said(plan: ScenePlan, relations) -> str:
    return ", ".join(f"{plan.objects[r.subject]!r} {r.kind} {plan.objects[r.object]!r}" for r in relations)


def _supports(plan: ScenePlan) -> dict[int, int]:
    """support -> the object resting directly on it ("on" / "under"); refuses an object on two,
    two on one and cycles."""
    above: dict[int, int] = {}
    below: dict[int, int] = {}
    for r in plan.relations:
        if r.kind in ("on", "under"):
            top, bottom = (r.subject, r.object) if r.kind == "on" else (r.object, r.subject)
            if below.get(top, bottom) != bottom:
                raise ValueError(f"{plan.objects[top]!r} cannot rest on both {plan.objects[below[top]]!r} and "
                                 f"{plan.objects[bottom]!r}")
            if above.get(bottom, top) != top:
                raise ValueError(f"{plan.objects[bottom]!r} cannot hold both {plan.objects[above[bottom]]!r} and "
                                 f"{plan.objects[top]!r}: at most one object rests directly on another")
            above[bottom], below[top] = top, bottom
    for k in below:
        chain = _chain(k, above)
        if chain[-1] in above:  # the walk up came back to k
            loop = [r for r in plan.relations if r.kind in ("on", "under") and {r.subject, r.object} <= set(chain)]
            raise ValueError(f"contradictory relations: {_said(plan, loop)}")
    return above


def _chain(k: int, above: dict[int, int]) -> list[int]:
    """``k`` and the objects stacked on it, bottom to top (stopping before one repeats)."""
    chain = [k]
    while chain[-1] in above and above[chain[-1]] not in chain:
        chain.append(above[chain[-1]])
    return chain


def _reach(edges: list[tuple[int, int]], start: int) -> set[int]:
    """The nodes reachable from ``start`` (itself included) along directed ``edges``."""
    seen, todo = {start}, [start]
    while todo:
        u = todo.pop()
        for v in {q for p, q in edges if p == u} - seen:
            seen.add(v)
            todo.append(v)
    return seen


def _groups(pairs: list[tuple[int, int]], nodes) -> dict[int, int]:
    """node -> a label shared by the nodes that ``pairs`` connect."""
    label = {v: v for v in nodes}
    for a, b in pairs:
        old, new = label[b], label[a]
        label = {v: new if g == old else g for v, g in label.items()}
    return label


def _coords(edges: list[tuple[int, int]], label: dict[int, int], width: dict[int, float], gap: float) -> dict:
    """Stack -> coordinate along one axis: each edge ``u -> v`` between groups puts every stack of
    ``v`` past every stack of ``u`` (longest paths over the group DAG, from 0)."""
    w = {g: max(width[b] for b in label if label[b] == g) for g in label.values()}
    pos = dict.fromkeys(w, 0.0)
    for _ in w:
        for u, v in edges:
            pos[v] = max(pos[v], pos[u] + w[u] + gap + w[v])
    return {b: pos[label[b]] for b in label}


def _place(plan: ScenePlan, base: dict[int, int], width: dict[int, float], gap: float) -> dict:
    """Stack base -> ``(x, y)`` (see :func:`solve_layout`); ``group[axis]`` labels the stacks
    that share the coordinate along ``axis`` (0: rows, same x; 1: columns, same y)."""
    horizontal = [r for r in plan.relations if r.kind in _AXIS_SIGN]
    columns = _groups([(base[r.subject], base[r.object]) for r in horizontal if _AXIS_SIGN[r.kind][0] == 0], width)
    horizontal = [r for r in horizontal if r.kind != "next to" or columns[base[r.subject]] != columns[base[r.object]]]
    rows = _groups([(base[r.subject], base[r.object]) for r in horizontal if _AXIS_SIGN[r.kind][0] == 1], width)
    group, edges = {0: rows, 1: columns}, {0: [], 1: []}
    for r in sorted(horizontal, key=lambda r: r.kind == "next to"):  # "next to" turns to fit the others
        axis, sign = _AXIS_SIGN[r.kind]
        u, v = (group[axis][base[r.object]], group[axis][base[r.subject]])[::sign]
        if r.kind == "next to" and u in _reach(edges[axis], v):
            u, v = v, u
        if u == v or u in _reach(edges[axis], v):
            loop = {g for g in _reach(edges[axis], v) if u in _reach(edges[axis], g)} | {u, v}
            said = [q for q in horizontal if {group[axis][base[q.subject]], group[axis][base[q.object]]} <= loop]
            raise ValueError(f"contradictory relations: {_said(plan, said)}")
        edges[axis].append((u, v))
    while True:
        x, y = (_coords(edges[axis], group[axis], width, gap) for axis in (0, 1))
        clash = next(((a, b) for a, b in combinations(sorted(width), 2)
                      if max(abs(x[a] - x[b]), abs(y[a] - y[b])) < width[a] + width[b] + gap - 1e-9), None)
        if clash is None:
            return {b: (x[b], y[b]) for b in width}
        a, b = clash
        axis = next((axis for axis in (1, 0) if group[axis][a] != group[axis][b]), None)
        if axis is None:
            raise ValueError(f"contradictory relations: {_said(plan, horizontal)} put {plan.objects[a]!r} and "
                             f"{plan.objects[b]!r} in one place")
        edges[axis].append((group[axis][a], group[axis][b]))
