"""The objects of a generated scene (a run of kind ``scene``) in the side panel.

The "Objects" folder has a dropdown of the scene's objects (by name: "cube", "sphere") and, for
the one selected, sliders for its centre (x, y, z, inside the scene's cube ``[-b, b]^3``), its
rotation about +z (degrees) and its size (half side of its cube), a "Hidden" checkbox, "Reset"
(back to the layout the run was opened with) and "Save layout", which writes the layout shown to
``RUN/layout_edited.json`` for ``nerfgen render RUN --layout RUN/layout_edited.json``.

Every edit assigns an edited copy to :attr:`SceneRun.layout
<nerfgen.generate.scene_run.SceneRun.layout>` (which re-derives the scene's occupancy grid: the
next frame shows it, nothing retrained) and then asks for a re-render. Viser calls the controls'
callbacks from its threads: edits are serialised by a lock, and each reads its control's value
under it, so the last value set is the one that stays, in whatever order the callbacks run.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import viser

import nerfgen

EDITED_FILE = "layout_edited.json"
"""Where "Save layout" writes, in the run directory."""
MIN_SIZE = 0.05
"""Smallest size the slider offers (world units, half side)."""
STEP = 0.01
"""Step of the centre and size sliders (world units)."""
AXES = ("x", "y", "z")


def _clamped(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


class LayoutPanel:
    """The objects of a scene run's layout (module docstring).

    Args:
        gui: the server's GUI.
        run: a :class:`~nerfgen.generate.scene_run.SceneRun`; its :attr:`layout` is what the
            controls edit.
        changed: called after every edit (re-render the tabs).
        hold: a context manager factory held while the layout is put in place (the viewer passes
            one that waits for the frame being rendered, so that no frame mixes two layouts).
    """

    def __init__(self, gui: viser.GuiApi, run, changed: Callable[[], None],
                 hold: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> None:
        self.run, self.changed, self.hold = run, changed, hold
        self.original: nerfgen.Layout = run.layout
        self.names = [o.name for o in self.original.objects]
        self.k = 0
        self._lock = threading.RLock()  # edits and selections come from viser's callback threads
        self._showing = False  # True while the controls are set to the selected object's values
        b = float(run.config.scene.box)
        with gui.add_folder("Objects") as self.folder:
            self.object = gui.add_dropdown("Object", self.names, initial_value=self.names[0],
                                           hint="the object the controls below edit")
            self.prompt = gui.add_markdown("")
            self.x, self.y, self.z = (gui.add_slider(axis, -b, b, STEP, 0.0, hint=f"centre along {axis}")
                                      for axis in AXES)
            self.rotation = gui.add_slider("Rotation", 0.0, 360.0, 1.0, 0.0, hint="degrees about +z")
            self.size = gui.add_slider("Size", MIN_SIZE, b, STEP, min(1.0, b), hint="half side of the object's cube")
            self.hidden = gui.add_checkbox("Hidden", False, hint="leave the object out of the scene")
            self.reset_button = gui.add_button("Reset", icon=viser.Icon.ARROW_BACK_UP,
                                               hint="the layout the run was opened with")
            self.save_button = gui.add_button("Save layout", icon=viser.Icon.DEVICE_FLOPPY,
                                              hint=f"write it to {EDITED_FILE} in the run directory")
            self.status = gui.add_markdown("")
        self.object.on_update(lambda _: self.select(self.names.index(self.object.value)))
        for name in (*AXES, "rotation", "size", "hidden"):
            getattr(self, name).on_update(lambda _, name=name: self._control_changed(name))
        self.reset_button.on_click(lambda _: self.reset())
        self.save_button.on_click(lambda _: self.save())
        self._show()

    # -- the selected object ---------------------------------------------------------------------
    def select(self, k: int) -> None:
        """Show object ``k``'s values in the controls (no edit, no re-render)."""
        with self._lock:
            self.k = int(k)
            if self.object.value != self.names[self.k]:
                self.object.value = self.names[self.k]  # its callback comes back here, with k unchanged
            self._show()

    def _show(self) -> None:
        """Set the controls to the selected object's values (clamped into the sliders' ranges)."""
        with self._lock:
            o = self.run.layout.objects[self.k]
            self._showing = True
            try:
                for axis, value in zip(AXES, o.center):
                    slider = getattr(self, axis)
                    slider.value = _clamped(value, slider.min, slider.max)
                self.rotation.value = float(o.rotation) % 360.0
                self.size.value = _clamped(o.size, self.size.min, self.size.max)
                self.hidden.value = bool(o.hidden)
            finally:
                self._showing = False
            self.prompt.content = f"*{o.prompt}*"

    def _control_changed(self, name: str) -> None:
        """A control moved: apply its value (read now, under the lock) to the selected object."""
        with self._lock:
            if self._showing:
                return
            k, value = self.k, getattr(self, name).value
            if name in AXES:
                center = list(self.run.layout.objects[k].center)
                center[AXES.index(name)] = float(value)
                self.edit(k, center=tuple(center))
            else:
                self.edit(k, **{name: bool(value) if name == "hidden" else float(value)})

    # -- edits -----------------------------------------------------------------------------------
    def edit(self, k: int, **changes) -> bool:
        """Change object ``k`` (:meth:`Layout.edited <nerfgen.generate.layout.Layout.edited>`
        keywords: ``center``, ``size``, ``rotation``, ``hidden``) and re-render; False (and no
        re-render) when nothing changed."""
        with self._lock:
            return self._put(self.run.layout.edited(k, **changes))

    def reset(self) -> bool:
        """Back to the layout the run was opened with (the controls follow)."""
        with self._lock:
            done = self._put(self.original)
            self._show()
            self.status.content = "reset to the layout the run was opened with"
            return done

    def _put(self, layout: nerfgen.Layout) -> bool:
        if layout == self.run.layout:
            return False
        with self.hold():
            self.run.layout = layout
        self.changed()
        return True

    def save(self) -> Path:
        """Write the layout shown to ``RUN/layout_edited.json`` (atomically) and say where."""
        path = Path(self.run.path) / EDITED_FILE
        with self._lock:
            nerfgen.write_layout(path, self.run.layout)
        self.status.content = (f"saved `{path}`; render it with  \n"
                               f"`nerfgen render {self.run.path} --orbit --output edited.mp4 --layout {path}`")
        return path
