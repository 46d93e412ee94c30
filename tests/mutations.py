"""Seeded mutations of JSON documents and binary files for the fuzz tests: every case a reader
must answer with one clear error (or read correctly), never another exception or a hang."""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
from collections.abc import Iterator
from typing import Any

BAD_VALUES: list[Any] = [None, "", "x" * 300, -1, 0, 1e308, -1e308, math.nan, math.inf, True, [], {}, [1, "a"],
                         2**63, {"a": 1}, "nan"]
"""What a leaf is replaced with: wrong types, empty values, huge and non-finite numbers."""


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path (keys and indices) of every value in a JSON document, outermost first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))


def _replaced(doc: Any, path: tuple, new: Any, delete: bool = False) -> Any:
    doc = json.loads(json.dumps(doc))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return doc


def json_cases(doc: Any, count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` mutated copies of ``doc`` as file contents, each with a label: a value deleted or
    replaced by one of :data:`BAD_VALUES` at a random path, plus whole-file damage (empty, cut
    short, garbage, another JSON type)."""
    rng = random.Random(seed)
    text = json.dumps(doc, indent=2).encode()
    cases = [("empty file", b""), ("cut in half", text[: len(text) // 2]), ("binary garbage", bytes(range(256)) * 4),
             ("a JSON list", b"[1, 2, 3]"), ("JSON null", b"null"), ("an empty object", b"{}"),
             ("not UTF-8", b"\xff\xfe" + text)]
    paths = [p for p in leaves(doc) if p]
    while len(cases) < count and paths:
        path = rng.choice(paths)
        where = "/".join(map(str, path))
        if rng.random() < 0.25 and isinstance(path[-1], str):
            mutated, label = _replaced(doc, path, None, delete=True), f"{where} deleted"
        else:
            new = rng.choice(BAD_VALUES)
            mutated, label = _replaced(doc, path, new), f"{where} = {str(new)[:20]!s}"
        cases.append((label, json.dumps(mutated, allow_nan=True).encode()))
    return cases[:count]


def binary_cases(data: bytes, count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``count`` damaged copies of a binary file: empty, cut at random places, bytes flipped,
    the header's length field wrecked."""
    rng = random.Random(seed)
    cases = [("empty file", b""), ("8 bytes", data[:8]), ("header only", data[: min(len(data), 64)]),
             ("huge header length", (2**62).to_bytes(8, "little") + data[8:])]
    while len(cases) < count:
        if rng.random() < 0.5:
            cut = rng.randrange(1, max(2, len(data)))
            cases.append((f"cut at {cut}", data[:cut]))
        else:
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                at = rng.randrange(len(damaged))
                damaged[at] = rng.randrange(256)
            cases.append(("bytes flipped", bytes(damaged)))
    return cases[:count]


class Hang(Exception):
    """A case ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`Hang` when the block runs past ``seconds`` (main thread, Unix)."""

    def stop(signum, frame):
        raise Hang(f"no answer in {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
