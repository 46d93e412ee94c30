"""The capture formats :func:`~nerfgen.data.load_dataset` reads, chosen by name or found from a folder.

Each :class:`Reader` says what it looks for in a folder and what a folder read through it carries:
foreground masks, intrinsics of its own for each view, a scene box, near/far depth bounds. Folders
often match several readers (a DTU scan as NeuS publishes it holds ``cameras_sphere.npz`` and
``mask/`` beside an LLFF ``poses_bounds.npy``; an LLFF download holds a COLMAP ``sparse/0``); the
reader that carries the most wins, ties going to the earlier one in :data:`READERS`, and
:func:`choose_format` says which won and why.

>>> choose_format(Path("data/dtu_scan65"), "train").reason  # doctest: +SKIP
'read as IDR/NeuS (cameras_sphere.npz: masks, per-view intrinsics, a scene box) over LLFF (poses_bounds.npy:
near/far bounds); choose with --format'
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nerfgen.data.blender import parse_blender, split_files
from nerfgen.data.colmap import find_colmap_model, parse_colmap
from nerfgen.data.errors import DatasetError
from nerfgen.data.idr import find_idr_cameras, has_masks, parse_idr
from nerfgen.data.instant_ngp import parse_instant_ngp
from nerfgen.data.llff import parse_llff
from nerfgen.data.transforms import ParsedScene

__all__ = ["FORMATS", "READERS", "FormatChoice", "Reader", "choose_format", "reader_named"]

MASKS, INTRINSICS, BOX, BOUNDS = "masks", "per-view intrinsics", "a scene box", "near/far bounds"


@dataclass(frozen=True)
class Reader:
    """One capture format.

    Attributes:
        name: What ``format=`` / ``--format`` calls it (and what a run records).
        aliases: Other names accepted for it.
        title: Its name in messages.
        looks_for: The files it needs, for messages.
        matches: ``(folder, split) -> str | None``: the file that makes the folder this format's
            (for this split), named relative to the folder, or None.
        carries: ``folder -> tuple[str, ...]``: what the folder gives through this reader.
        parse: ``(path, split, holdout_every) -> ParsedScene`` (``path``: see :class:`FormatChoice`).
    """

    name: str
    aliases: tuple[str, ...]
    title: str
    looks_for: str
    matches: Callable[[Path, str], str | None]
    carries: Callable[[Path], tuple[str, ...]]
    parse: Callable[[Path, str, int], ParsedScene]


def _colmap_carries(folder: Path) -> tuple[str, ...]:
    """Per-view intrinsics when the model holds more than one camera (read from the file's header)."""
    model = find_colmap_model(folder)
    try:
        if (model / "cameras.bin").is_file():
            with open(model / "cameras.bin", "rb") as f:
                count = struct.unpack("<Q", f.read(8))[0]
        else:
            lines = (model / "cameras.txt").read_text(encoding="utf-8").splitlines()
            count = sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))
    except (OSError, UnicodeDecodeError, struct.error):
        return ()  # the parser says what is wrong, if this reader is the one chosen
    return (INTRINSICS,) if count > 1 else ()


def _file(folder: Path, name: str) -> str | None:
    return name if (folder / name).is_file() else None


def _blender_file(folder: Path, split: str) -> str | None:
    files = split_files(folder, split)
    return files[0].name if files else None


def _colmap_file(folder: Path, split: str) -> str | None:
    model = find_colmap_model(folder)
    return None if model is None else str(model.relative_to(folder))


def _idr_file(folder: Path, split: str) -> str | None:
    npz = find_idr_cameras(folder)
    return None if npz is None else npz.name


READERS = (
    Reader("nerf-synthetic", ("blender",), "NeRF-synthetic", "transforms_{split}.json",
           _blender_file, lambda folder: (BOX,), parse_blender),
    Reader("llff", (), "LLFF", "poses_bounds.npy",
           lambda folder, split: _file(folder, "poses_bounds.npy"), lambda folder: (BOUNDS,), parse_llff),
    Reader("instant-ngp", ("transforms", "nerfstudio"), "instant-ngp/nerfstudio", "transforms.json",
           lambda folder, split: _file(folder, "transforms.json"), lambda folder: (BOX,), parse_instant_ngp),
    Reader("colmap", (), "COLMAP", "a sparse model in sparse/0, sparse or colmap/sparse/0",
           _colmap_file, _colmap_carries, parse_colmap),
    Reader("idr", ("neus", "dtu"), "IDR/NeuS", "cameras_sphere.npz or cameras.npz", _idr_file,
           lambda folder: ((MASKS,) if has_masks(folder) else ()) + (INTRINSICS, BOX), parse_idr),
)  # fmt: skip
"""Every reader, in the order that breaks ties."""
NGP = READERS[2]

FORMATS = ("auto",) + tuple(r.name for r in READERS)
"""The names ``format=`` takes (each reader's aliases too)."""


def _choices() -> str:
    return ", ".join(["auto"] + [r.name + (f" ({', '.join(r.aliases)})" if r.aliases else "") for r in READERS])


def reader_named(name: str) -> Reader | None:
    """The reader called ``name`` (or one of its aliases, any case); None for ``"auto"``.

    Raises:
        ValueError: an unknown name, listing the choices.
    """
    key = name.lower() if isinstance(name, str) else name
    if key == "auto":
        return None
    for reader in READERS:
        if key == reader.name or key in reader.aliases:
            return reader
    raise ValueError(f"unknown capture format {name!r}; expected one of {_choices()}")


@dataclass(frozen=True)
class FormatChoice:
    """The reader chosen for a capture, and why when several matched.

    Attributes:
        reader: The chosen reader.
        path: What its parser reads: the folder, or the instant-ngp / nerfstudio JSON file.
        reason: ``"read as ... over ...; choose with --format"`` when several readers matched, else None.
    """

    reader: Reader
    path: Path
    reason: str | None = None

    def parse(self, split: str, holdout_every: int) -> ParsedScene:
        """One split, parsed by the chosen reader."""
        return self.reader.parse(self.path, split, holdout_every)


def _describe(reader: Reader, folder: Path, split: str) -> str:
    carries = reader.carries(folder)
    return f"{reader.title} ({reader.matches(folder, split)}: {', '.join(carries) if carries else 'cameras only'})"


def choose_format(path: Path, split: str, format: str = "auto") -> FormatChoice:
    """The reader for the capture at ``path``: the one ``format`` names, else the one of those
    matching the folder that carries the most (ties: the order of :data:`READERS`).

    Args:
        path: A capture folder, or an instant-ngp / nerfstudio JSON file.
        split: The split to be loaded (NeRF-synthetic folders match per split).
        format: ``"auto"`` or a reader's name or alias.

    Raises:
        ValueError: ``format`` names no reader.
        DatasetError: ``path`` is missing, or holds no format (or not the one named).
    """
    chosen = reader_named(format)
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset path not found")
    if path.is_file():
        if chosen is not None and chosen.name != "instant-ngp":
            raise DatasetError(f"{path}: a file; the {chosen.title} format reads a folder holding {chosen.looks_for}")
        return FormatChoice(NGP, path)
    if chosen is not None:
        if not chosen.matches(path, split):
            raise DatasetError(f"{path}: the {chosen.title} format (--format {chosen.name}) expects "
                               f"{chosen.looks_for.format(split=split)} in this folder, found none")
        return _choice(chosen, path)
    found = [r for r in READERS if r.matches(path, split)]
    if not found:
        listed = sorted(p.name for p in path.glob("transforms*.json"))
        raise DatasetError(
            f"{path}: expected transforms_{split}.json (NeRF-synthetic), transforms.json (instant-ngp), "
            f"poses_bounds.npy (LLFF), a COLMAP model in sparse/0, sparse or colmap/sparse/0 (cameras.bin/.txt) "
            f"or cameras_sphere.npz (IDR/NeuS) in this folder, "
            f"found {', '.join(listed) if listed else 'no transforms*.json'}"
        )
    if len(found) == 1:
        return _choice(found[0], path)
    best = max(found, key=lambda r: len(r.carries(path)))  # max keeps the first of equals
    others = "; ".join(_describe(r, path, split) for r in found if r is not best)
    return _choice(best, path, f"read as {_describe(best, path, split)} over {others}; choose with --format")


def _choice(reader: Reader, folder: Path, reason: str | None = None) -> FormatChoice:
    return FormatChoice(reader, folder / "transforms.json" if reader is NGP else folder, reason)
