"""Seeded mutations of a reader's input files, and the verdict on what the reader did with them.

A case copies a valid input (:mod:`tests.fuzz_targets`), applies one to three mutations drawn from
a generator seeded by the reader's name and the case number (so case ``k`` of a reader is the same
everywhere), reads it under a time limit and judges the result:

- ``ok``: read, and what was read is sane (finite cameras, ...);
- ``error``: one of the reader's documented errors (the exact type), naming a file of the input
  and saying what was wrong, in at most :data:`MAX_MESSAGE` characters;
- ``unhandled``: any other exception (``KeyError``, ``struct.error``, numpy's or PIL's own ...);
- ``unclear``: a documented error whose message names no file, says nothing of what was expected,
  or is too long; or an ``ok`` whose result is not sane;
- ``hang``: still reading after the time limit.

Mutations: files truncated, emptied, bytes flipped, replaced by garbage or by a folder, deleted;
folders emptied; JSON/YAML values deleted, set to NaN/inf/huge numbers/wrong types/wrong shapes,
nested very deep; text tokens replaced; arrays with NaN/inf, wrong shapes, dtypes, object arrays;
images resized, in other modes, in another format under the same name, with huge headers.
"""

from __future__ import annotations

import io
import json
import shutil
import signal
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tests.fuzz_targets import Target

MAX_MESSAGE = 2000
"""Longest error message that still reads as one clear error (characters)."""
EXPLAINS = ("expect", "must", "cannot", "not", "no ", "missing", "unknown", "only", "malformed", "need", "truncated",
            "unexpected", "differ", " but ", "has ", "empty", "singular", "invalid", "unsupported", "non-finite",
            "nan", "too ", "already")
"""A message says what was wrong when it holds one of these."""
ODD_VALUES = [float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 10**30, 0, -1, 1e-320, "x", "", None,
              True, [], {}, [1, 2], {"a": 1}, "\u00e9\u0000", 2**63]
ODD_TOKENS = ["nan", "inf", "-inf", "-1", "0", "1e308", "99999999999999999999", "x", "\u00e9", "1.5", "-0"]


class Hang(Exception):
    """Raised in the reader when the case runs past its time limit."""


@dataclass
class Outcome:
    """What one case did: ``verdict`` (see the module docstring), the error type, the message (or
    why it is unclear) and the mutations applied."""

    case: int
    verdict: str
    error: str
    message: str
    mutations: list[str]


# -- bytes ----------------------------------------------------------------------------------------------
def _truncate(data: bytes, rng) -> tuple[bytes, str]:
    n = int(rng.integers(0, max(len(data), 1)))
    return data[:n], f"truncated to {n} of {len(data)} bytes"


def _flip(data: bytes, rng) -> tuple[bytes, str]:
    if not data:
        return b"\xff", "empty file given one byte"
    out = bytearray(data)
    where = rng.integers(0, len(out), int(rng.integers(1, 9)))
    for i in where:
        out[i] = int(rng.integers(0, 256))
    return bytes(out), f"{len(where)} bytes changed"


def _garbage(data: bytes, rng) -> tuple[bytes, str]:
    n = int(rng.choice([0, 1, 7, 64, 4096, max(len(data), 1)]))
    return rng.bytes(n), f"replaced by {n} random bytes"


def _append(data: bytes, rng) -> tuple[bytes, str]:
    return data + rng.bytes(int(rng.integers(1, 64))), "random bytes appended"


BYTE_OPS = [_truncate, _flip, _garbage, _append]


# -- structured values (JSON, YAML) ----------------------------------------------------------------------
def _paths(value, budget: int = 2000) -> list[tuple]:
    """Paths (tuples of keys / indices) into a nested JSON-like value, the root first, breadth first,
    at most ``budget`` of them (an alias bomb holds billions)."""
    out, queue = [], [((), value)]
    while queue and len(out) < budget:
        prefix, item = queue.pop(0)
        out.append(prefix)
        if isinstance(item, dict):
            queue += [(prefix + (key,), v) for key, v in item.items()]
        elif isinstance(item, list):
            queue += [(prefix + (i,), v) for i, v in enumerate(item[:8])]
    return out


def _mutate_tree(doc, rng) -> tuple[object, str]:
    """One change at a random place of a parsed document."""
    paths = _paths(doc)
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        new = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
        return new, f"whole document replaced by {new!r:.40}"
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    op = int(rng.integers(5))
    if op == 0:
        del parent[key]
        return doc, f"{path} deleted"
    if op == 1 and isinstance(old, list):
        if old and rng.random() < 0.5:
            old.pop(int(rng.integers(len(old))))
            return doc, f"{path} lost an element"
        old.append(old[0] if old else 1.0)
        return doc, f"{path} gained an element"
    if op == 2 and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = float(old) * float(rng.choice([-1.0, 1e12, 1e-12, 0.0, np.nan]))
        return doc, f"{path} scaled to {parent[key]!r}"
    if op == 3:
        parent[key] = [old]
        return doc, f"{path} wrapped in a list"
    parent[key] = ODD_VALUES[int(rng.integers(len(ODD_VALUES)))]
    return doc, f"{path} set to {parent[key]!r:.40}"


def _json_op(data: bytes, rng) -> tuple[bytes, str]:
    try:
        doc = json.loads(data)
    except ValueError:
        return _flip(data, rng)
    if rng.random() < 0.05:
        depth = int(rng.choice([1000, 20000]))
        return b"[" * depth + b"]" * depth, f"nested {depth} deep"
    doc, what = _mutate_tree(doc, rng)
    return json.dumps(doc).encode(), what


def _yaml_op(data: bytes, rng) -> tuple[bytes, str]:
    roll = rng.random()
    if roll < 0.05:
        depth = int(rng.choice([1000, 5000]))
        return b"a: " + b"[" * depth + b"]" * depth, f"nested {depth} deep"
    if roll < 0.1:
        bomb = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10))
        return (b"l0: &l0 [1, 2]\n" + bomb.encode() + b"camera_opt: *l9\ngrid: *l9\n"), "alias bomb (9^9 items)"
    doc = yaml.safe_load(data)
    doc, what = _mutate_tree(doc, rng)
    return yaml.safe_dump(doc).encode(), what


def _text_op(data: bytes, rng) -> tuple[bytes, str]:
    lines = data.decode("utf-8", "replace").split("\n")
    i = int(rng.integers(len(lines)))
    tokens = lines[i].split(" ")
    op = int(rng.integers(4))
    if op == 0:
        j = int(rng.integers(len(tokens)))
        tokens[j] = ODD_TOKENS[int(rng.integers(len(ODD_TOKENS)))]
        lines[i] = " ".join(tokens)
        return "\n".join(lines).encode(), f"line {i + 1} token {j} set to {tokens[j]!r}"
    if op == 1:
        del lines[i]
        return "\n".join(lines).encode(), f"line {i + 1} deleted"
    if op == 2:
        lines.insert(i, lines[i])
        return "\n".join(lines).encode(), f"line {i + 1} doubled"
    lines[i] = " ".join(tokens[: int(rng.integers(len(tokens) + 1))])
    return "\n".join(lines).encode(), f"line {i + 1} cut short"


# -- arrays ------------------------------------------------------------------------------------------------
def _odd_array(array: np.ndarray, rng) -> tuple[np.ndarray, str]:
    op = int(rng.integers(7))
    a = np.array(array)
    if op == 0 and a.size and a.dtype.kind == "f":
        a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e308, 0.0])
        return a, "one value set to nan/inf/huge/0"
    if op == 1 and a.ndim:
        return a.reshape(-1)[: max(a.size - 1, 0)], "flattened, one value short"
    if op == 2:
        return a.T if a.ndim > 1 else a[None], "transposed / one more axis"
    if op == 3:
        return a.astype(rng.choice(["int8", "complex64", "bool", "<U4"])), "another dtype"
    if op == 4:
        return np.array([a, "x"], dtype=object), "an object array"
    if op == 5:
        return a[:0], "no rows"
    return np.zeros_like(a), "all zeros"


def _npy_op(data: bytes, rng) -> tuple[bytes, str]:
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception:
        return _flip(data, rng)
    array, what = _odd_array(array, rng)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue(), what


def _npz_op(data: bytes, rng) -> tuple[bytes, str]:
    try:
        arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
    except Exception:
        return _flip(data, rng)
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    if rng.random() < 0.3:
        del arrays[key]
        what = f"{key} deleted"
    else:
        arrays[key], what = _odd_array(arrays[key], rng)
        what = f"{key}: {what}"
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue(), what


# -- images --------------------------------------------------------------------------------------------------
def _huge_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` and whose data is one empty IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _image_op(data: bytes, rng) -> tuple[bytes, str]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            image = im.copy()
    except Exception:
        return _flip(data, rng)
    op = int(rng.integers(4))
    buf = io.BytesIO()
    if op == 0:
        size = (int(rng.integers(1, 20)), int(rng.integers(1, 20)))
        image.resize(size).save(buf, format="PNG")
        return buf.getvalue(), f"resized to {size}"
    if op == 1:
        mode = str(rng.choice(["L", "LA", "P", "1", "I", "I;16", "F", "CMYK", "RGBA", "RGB", "YCbCr"]))
        converted = image.convert(mode) if mode != "I;16" else image.convert("L").convert("I;16")
        converted.save(buf, format="TIFF" if mode in ("F", "CMYK", "YCbCr") else "PNG")
        return buf.getvalue(), f"mode {mode}"
    if op == 2:
        fmt = str(rng.choice(["JPEG", "BMP", "GIF", "WEBP", "TIFF"]))
        image.convert("RGB").save(buf, format=fmt)
        return buf.getvalue(), f"saved as {fmt} under the same name"
    size = int(rng.choice([0, 1, 20000, 2**31 - 1]))
    return _huge_png(size, size), f"PNG header claiming {size}x{size}"


OPS_BY_SUFFIX: dict[str, list[Callable]] = {
    ".json": [_json_op], ".yaml": [_yaml_op], ".txt": [_text_op], ".npy": [_npy_op], ".npz": [_npz_op],
    ".png": [_image_op], ".jpg": [_image_op], ".webp": [_image_op],
}


# -- files and folders -------------------------------------------------------------------------------------
def _mutate(root: Path, rng) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    folders = sorted(p for p in root.rglob("*") if p.is_dir())
    roll = rng.random()
    if roll < 0.06 or not files:
        folder = ([root] + folders)[int(rng.integers(len(folders) + 1))]
        for p in sorted(folder.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        return f"{folder.relative_to(root.parent)}/ emptied"
    path = files[int(rng.integers(len(files)))]
    name = path.relative_to(root)
    if roll < 0.12:
        path.unlink()
        return f"{name} deleted"
    if roll < 0.15:
        path.unlink()
        path.mkdir()
        return f"{name} replaced by a folder"
    ops = OPS_BY_SUFFIX.get(path.suffix, [])
    op = ops[0] if ops and rng.random() < 0.7 else BYTE_OPS[int(rng.integers(len(BYTE_OPS)))]
    try:
        data, what = op(path.read_bytes(), rng)
    except Exception as exc:  # a mutation that cannot apply to this file: corrupt its bytes instead
        data, what = _flip(path.read_bytes(), rng)
        what += f" (after {type(exc).__name__})"
    path.write_bytes(data)
    return f"{name}: {what}"


def _alarm(signum, frame):
    raise Hang


def _judge(target: Target, root: Path, error: Exception) -> tuple[str, str]:
    message = str(error)
    if type(error) not in target.errors:
        return "unhandled", f"{type(error).__name__}: {message[:300]}"
    if len(message) > MAX_MESSAGE:
        return "unclear", f"{len(message)}-character message: {message[:200]}"
    if str(root) not in message:
        return "unclear", f"names no file of the input: {message[:300]}"
    if not any(word in message.lower() for word in EXPLAINS):
        return "unclear", f"says not what was expected: {message[:300]}"
    return "error", message[:300]


def run_case(target: Target, base: Path, work: Path, case: int, timeout: float = 10.0) -> Outcome:
    """Case ``case`` of ``target``: a copy of ``base`` (its valid input) mutated, read and judged."""
    rng = np.random.default_rng([zlib.crc32(target.name.encode()), case])
    root = work / f"{target.name}-{case}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(base, root)
    mutations = [_mutate(root, rng) for _ in range(int(rng.choice([1, 1, 1, 2, 3])))]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            value = target.read(root)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        target.check(value)
        outcome = Outcome(case, "ok", "", "", mutations)
    except Hang:
        outcome = Outcome(case, "hang", "Hang", f"still reading after {timeout} s", mutations)
    except AssertionError as exc:
        outcome = Outcome(case, "unclear", "AssertionError", f"read, but not sane: {exc}", mutations)
    except Exception as exc:  # the verdict: what kind of exception, and what it says
        verdict, message = _judge(target, root, exc)
        outcome = Outcome(case, verdict, type(exc).__name__, message, mutations)
    shutil.rmtree(root, ignore_errors=True)
    return outcome


def prepare(target: Target, work: Path) -> Path:
    """The valid input of ``target``, written once under ``work``."""
    base = work / f"base-{target.name}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    target.build(base)
    target.read(base)  # the unmutated input must read
    return base
