"""The source views of a run that renders its scene from them (a generalizable run): drawn as
frustums with their images, and a "Source views" folder with one checkbox per view, so the scene
is rendered from any subset of them (features recomputed for the subset, nothing retrained).

Viser calls the checkboxes' callbacks from its threads: changes are serialised by a lock and read
the boxes under it, so the boxes' last state is the one shown.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
import viser

import nerfgen
from nerfgen.viewer.scene import THUMBNAIL


def source_cameras(run: nerfgen.SourceViewed) -> tuple[nerfgen.Cameras, list[np.ndarray]]:
    """The run's source cameras and small copies of their images (what the frustums show)."""
    views = run.source_views()
    images = views.images.permute(0, 3, 1, 2)
    h, w = images.shape[2:]
    scale = min(1.0, THUMBNAIL / max(h, w))
    if scale < 1:
        images = torch.nn.functional.interpolate(images, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                                                 mode="area")
    small = (images.clamp(0, 1) * 255 + 0.5).byte().permute(0, 2, 3, 1).numpy()
    return views.cameras, list(small)


class SourcesPanel:
    """Which of the run's source views render the scene (module docstring).

    Args:
        gui: the server's GUI.
        run: a :class:`nerfgen.SourceViewed` run.
        changed: called after the sources change (re-render the tabs).
        hold: a context manager factory held while the sources are swapped (the viewer passes one
            that waits for the frame being rendered, so no frame mixes two sets of sources).
    """

    def __init__(self, gui: viser.GuiApi, run, changed: Callable[[], None],
                 hold: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> None:
        self.run, self.changed, self.hold = run, changed, hold
        self.views = run.source_views()
        self._lock = threading.RLock()
        with gui.add_folder("Source views") as self.folder:
            self.boxes = [gui.add_checkbox(f"{i}: {Path(name).name}", True, hint="render from this view")
                          for i, name in enumerate(self.views.names)]
            self.status = gui.add_markdown(self._say(list(range(len(self.boxes)))))
        for box in self.boxes:
            box.on_update(lambda _: self.apply())

    def _say(self, chosen: list[int]) -> str:
        return f"rendering from {len(chosen)} of {len(self.boxes)} source views"

    def apply(self) -> None:
        """Render from the views whose boxes are ticked (at least one; a model that needs a set
        number says so and keeps the views it had)."""
        with self._lock:
            chosen = [i for i, box in enumerate(self.boxes) if box.value]
            if not chosen:
                self.status.content = "tick at least one source view"
                return
            try:
                with self.hold():
                    self.run.use_sources(self.views[chosen], orbit=False)
            except ValueError as exc:
                self.status.content = str(exc)
                return
            self.status.content = self._say(chosen)
        self.changed()


__all__ = ["SourcesPanel", "source_cameras"]
