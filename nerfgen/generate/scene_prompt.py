"""Scene prompts -> objects and spatial relations: "a red cube on a blue sphere" is two objects and
``Relation(0, "on", 1)``; :func:`nerfgen.generate.layout_solver.solve_layout` turns them into boxes.

Grammar: clauses separated by ",", ";", "and" or "with a/an/the", each ``NP (REL NP)*``. A relation
links the noun phrases beside it ("A on B on C": A on B, B on C). A clause made only of new objects
is linked to the clause before it by ``next to`` (its first object next to the last object before
the separator), so "A left of B and C" puts C next to B. A phrase starting with "the" names the
latest earlier object whose words it ends with ("a blue sphere ... the sphere"), which joins
clauses. "red and white" (a colour on each side) and "with" before anything but an article stay
inside the noun phrase ("a red cube with white stripes").

Relations are in world terms (:data:`RELATIONS`): +z up, the front camera on +x looking at -x,
its image right is +y.

>>> plan = parse_scene("a green cone to the left of a yellow torus and a purple cylinder")
>>> plan.objects, [(r.subject, r.kind, r.object) for r in plan.relations]
(('a green cone', 'a yellow torus', 'a purple cylinder'), [(0, 'left of', 1), (1, 'next to', 2)])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nerfgen.scenes.objects import COLOURS, SHAPES

RELATIONS = ("on", "under", "left of", "right of", "in front of", "behind", "next to")
"""Canonical relation kinds, "subject kind object": on / under (box bottom on box top, centred),
left of / right of (smaller / larger y), in front of / behind (larger / smaller x), next to
(beside; the layout puts the object at +y, so "A and B" reads left to right)."""

_PHRASES = {
    "on": "on", "on top of": "on", "stacked on": "on", "atop": "on", "resting on": "on", "sitting on": "on",
    "under": "under", "below": "under", "beneath": "under", "underneath": "under",
    "left of": "left of", "to the left of": "left of", "on the left of": "left of",
    "right of": "right of", "to the right of": "right of", "on the right of": "right of",
    "in front of": "in front of", "behind": "behind", "in back of": "behind",
    "next to": "next to", "beside": "next to", "by": "next to", "near": "next to",
}
_LONGEST_FIRST = sorted(((tuple(p.split()), kind) for p, kind in _PHRASES.items()), key=lambda pk: -len(pk[0]))
_ARTICLES = {"a", "an", "the"}
_NOT_OBJECTS = _ARTICLES | {"left", "right", "front", "back", "top", "bottom", "side", "it", "them"}
_PREFIX = re.compile(r"^(?:there\s+(?:is|are)\s+)?(?:(?:a|an)\s+(?:3d\s+)?(?:render|rendering|photo|picture|image|"
                     r"model|painting|drawing)\s+of\s+)?", re.IGNORECASE)
_BACKGROUND = re.compile(r"(?:,\s*|\s+(?:on|against)\s+)(?:(?:a|an|the)\s+)?(?:\w+\s+)?background\W*$", re.IGNORECASE)
_SPELLINGS = {"gray": "grey"}  # spellings of COLOURS names that captions also use
_COLOUR_WORDS = set(COLOURS) | set(_SPELLINGS)
_SHAPE_WORDS = {word: shape for shape, words in SHAPES.items() for word in words}
_SIZE_WORDS = {"small": "small", "tiny": "small", "little": "small", "large": "large", "big": "large",
               "huge": "large"}


@dataclass(frozen=True)
class Relation:
    """"subject kind object" between objects of a plan or layout, e.g. ``Relation(0, "on", 1)``:
    object 0 is on object 1 (``kind`` one of :data:`RELATIONS`)."""

    subject: int
    kind: str
    object: int


@dataclass(frozen=True)
class ScenePlan:
    """What a scene prompt says: its object phrases as written ("a red cube", article included)
    and the relations between them (indices into ``objects``)."""

    prompt: str
    objects: tuple[str, ...]
    relations: tuple[Relation, ...]


def _words(phrase: str) -> list[str]:
    return re.findall(r"[\w-]+", phrase.lower())


def _noun_phrase(words: list[str]) -> str | None:
    """The object phrase in ``words`` (prefixes and punctuation stripped), None when it names none."""
    phrase = _PREFIX.sub("", " ".join(words), count=1).strip(" \"'`")
    return phrase if any(w not in _NOT_OBJECTS for w in _words(phrase)) else None


def _items(text: str) -> list[tuple[str, object]]:
    """``text`` as ("np", phrase), ("rel", (kind, as written)) and ("sep", word) items."""
    words = re.findall(r"[,;]|[^\s,;]+", re.sub(r"[.!?:]+(?=\s|$)", ",", text))
    low = [w.lower() for w in words]
    items, phrase, i = [], [], 0
    while i < len(words):
        rel = next(((len(p), kind) for p, kind in _LONGEST_FIRST if tuple(low[i:i + len(p)]) == p), None)
        between_colours = 0 < i < len(low) - 1 and low[i - 1] in _COLOUR_WORDS and low[i + 1] in _COLOUR_WORDS
        sep = (low[i] in (",", ";") or (low[i] == "and" and not between_colours)
               or (low[i] == "with" and i + 1 < len(low) and low[i + 1] in _ARTICLES))
        if rel is None and not sep:
            phrase.append(words[i])
            i += 1
            continue
        if (np := _noun_phrase(phrase)) is not None:
            items.append(("np", np))
        phrase = []
        items.append(("rel", (rel[1], " ".join(words[i:i + rel[0]]))) if rel else ("sep", low[i]))
        i += rel[0] if rel else 1
    if (np := _noun_phrase(phrase)) is not None:
        items.append(("np", np))
    return items


def _refers_to(phrase: str, objects: list[str]) -> int | None:
    """The earlier object a "the ..." phrase names (the latest whose words end with its words)."""
    words = _words(phrase)
    if words[:1] != ["the"] or len(words) < 2:
        return None
    return next((k for k in reversed(range(len(objects))) if _words(objects[k])[-len(words) + 1:] == words[1:]), None)


def parse_scene(prompt: str) -> ScenePlan:
    """Objects and relations of a scene prompt (grammar in the module docstring).

    Raises:
        ValueError: ``could not find objects in '<prompt>'`` when no noun phrase names an object;
            ``could not read '<prompt>': ...`` for a relation with no object before or after it,
            with what was understood (objects, relations).

    >>> parse_scene("a red cube on a blue sphere").relations
    (Relation(subject=0, kind='on', object=1),)
    """
    if not isinstance(prompt, str):
        raise TypeError(f"parse_scene: expected a prompt string, got {type(prompt).__name__}")
    items = _items(_BACKGROUND.sub("", prompt.strip()))
    if not any(kind == "np" for kind, _ in items):
        raise ValueError(f"could not find objects in {prompt!r}")
    objects: list[str] = []
    relations: list[Relation] = []
    problem = None
    last = pending = first = previous = None  # objects of this clause; a relation waiting for its object
    fresh, link_at = True, 0  # whether this clause names only new objects; where its link goes
    for kind, value in items + [("sep", "")]:
        if kind == "np":
            k = _refers_to(value, objects)
            fresh = fresh and k is None
            if k is None:
                objects.append(value)
                k = len(objects) - 1
            if pending is not None and k == last:
                problem = problem or f"{objects[k]!r} cannot be {pending[1]} itself"
            elif pending is not None:
                relations.append(Relation(last, pending[0], k))
            first, last, pending = k if first is None else first, k, None
        elif kind == "rel":
            if last is None:
                problem = problem or f"{value[1]!r} has no object before it"
            elif pending is not None:
                problem = problem or f"{pending[1]!r} has no object after it"
            pending = value if last is not None else None
        else:
            if pending is not None:
                problem = problem or f"{pending[1]!r} has no object after it"
            if first is not None:
                if previous is not None and fresh:
                    relations.insert(link_at, Relation(previous, "next to", first))
                previous = last
            last = pending = first = None
            fresh, link_at = True, len(relations)
    if problem:
        said = [f"{objects[r.subject]} {r.kind} {objects[r.object]}" for r in relations]
        understood = f"objects {objects!r}" + (f", relations {said!r}" if said else "")
        raise ValueError(f"could not read {prompt!r}: {problem} (understood: {understood})")
    return ScenePlan(prompt, tuple(objects), tuple(relations))


def object_words(phrase: str) -> tuple[str | None, str | None, str | None]:
    """``(colour, shape, size)`` in the built-in prior's vocabulary (``nerfgen.scenes.objects``):
    the first colour word ("gray" -> "grey"), the last shape word ("ball" -> "sphere"), the first
    size word as "small" (small / tiny / little) or "large" (large / big / huge); None when absent.

    >>> object_words("a small gray ball")
    ('grey', 'sphere', 'small')
    """
    words = [_SPELLINGS.get(w, w) for w in _words(phrase)]
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((_SHAPE_WORDS[w] for w in reversed(words) if w in _SHAPE_WORDS), None)
    return colour, shape, next((_SIZE_WORDS[w] for w in words if w in _SIZE_WORDS), None)


def object_name(phrase: str) -> str:
    """A short label: the phrase's last word, lower-cased, without punctuation ("a red cube" -> "cube")."""
    words = _words(phrase)
    if not words:
        raise ValueError(f"object_name: expected a phrase with a word in it, got {phrase!r}")
    return words[-1]
