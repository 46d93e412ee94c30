"""Writing an image set folder once and whole: ``images/*.png`` and ``labels.json`` rendered into a
temporary sibling and renamed into place (``labels.json`` last), a complete folder of the same
set kept as is, optionally rendered by several processes; and reading ``labels.json`` back."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from nerfgen.files import make_temp_dir

FORMAT = 1
"""Version of the layout and the renderer; bump when either changes."""
SETS = ("clevr", "objects")
LABELS_NAME = "labels.json"
IMAGES_DIR = "images"
BACKGROUND = (1.0, 1.0, 1.0)
"""Colour of rays that hit nothing."""


def set_header(name: str, size: int, seed: int, count: int, camera: dict, scene: dict) -> dict:
    doc = {"format": FORMAT, "set": name, "size": int(size), "seed": int(seed), "count": int(count),
           "camera": camera, "scene": scene, "background": list(BACKGROUND)}
    return json.loads(json.dumps(doc))  # tuples -> lists, as read back


def _complete(output: Path, header: dict) -> bool:
    """True when ``output`` holds a finished set with exactly this header."""
    try:
        labels = json.loads((output / LABELS_NAME).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(labels, dict) or {k: v for k, v in labels.items() if k != "images"} != header:
        return False
    images = labels.get("images")
    return (isinstance(images, list) and len(images) == header["count"]
            and all((output / e.get("file", "")).is_file() for e in images))


def _write_images(render_one: Callable[[int], tuple[np.ndarray, dict]], folder: Path, names: list[tuple[int, str]]
                  ) -> list[dict]:
    """Render and save images ``(index, file name)`` into ``folder``; returns their label entries."""
    entries = []
    for i, name in names:
        rgb, entry = render_one(i)
        Image.fromarray(rgb, mode="RGB").save(folder / name)
        entries.append({"file": name, **entry})
    return entries


def _render_all(render_one, folder: Path, count: int, workers: int, progress) -> list[dict]:
    """Label entries of all ``count`` images, rendered here or by ``workers`` spawned processes
    (chunks of 64 images; a set of one chunk renders here, as spawning costs seconds)."""
    width = max(6, len(str(count - 1)))
    names = [(i, f"{IMAGES_DIR}/{i:0{width}d}.png") for i in range(count)]
    workers = min(workers, -(-count // 64))
    chunk = 64 if workers > 1 else 1
    chunks = [names[k:k + chunk] for k in range(0, count, chunk)]
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    if pool is None:
        results = (_write_images(render_one, folder, c) for c in chunks)
    else:
        results = pool.map(_write_images, [render_one] * len(chunks), [folder] * len(chunks), chunks)
    entries: list[dict] = []
    try:
        for part in results:
            entries += part
            if progress is not None:
                progress(len(entries), count)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return entries


def render_set(output, header: dict, render_one: Callable[[int], tuple[np.ndarray, dict]], workers: int,
                progress) -> Path:
    """Render ``header["count"]`` images with ``render_one(i) -> (rgb, entry)`` into ``output``."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} exists and is not a folder")
    if output.is_dir() and _complete(output, header):
        return output
    if output.is_dir() and any(output.iterdir()):
        raise FileExistsError(f"{output} exists, is not empty and is not this image set "
                              f"({header['set']}, size {header['size']}, seed {header['seed']}, "
                              f"count {header['count']}); remove it or choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(output)
    try:
        (tmp / IMAGES_DIR).mkdir()
        entries = _render_all(render_one, tmp, header["count"], workers, progress)
        (tmp / LABELS_NAME).write_text(json.dumps({**header, "images": entries}))  # last: marks completeness
        try:
            os.replace(tmp, output)  # atomic; succeeds onto an absent or empty folder
        except OSError:
            if not _complete(output, header):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return output


def check_common(count: int, size: int, workers: int) -> None:
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if int(size) < 4:
        raise ValueError(f"size must be >= 4 pixels, got {size}")


def read_labels(folder: str | os.PathLike) -> dict:
    """The ``labels.json`` of a rendered set, checked for its format; errors name the file."""
    path = Path(folder) / LABELS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (expected the labels of a set from render_clevr/render_objects)")
    try:
        labels = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: malformed JSON ({exc})") from exc
    if not isinstance(labels, dict) or labels.get("format") != FORMAT or labels.get("set") not in SETS:
        raise ValueError(f"{path}: expected an object with format {FORMAT} and set in {SETS}")
    if not isinstance(labels.get("images"), list) or len(labels["images"]) != labels.get("count"):
        raise ValueError(f"{path}: expected an 'images' list of 'count' entries")
    return labels
