"""The objects of a generated (GAN) scene in the side panel.

The "Objects" folder holds the scene's controls -- the seed and "New scene" (a scene drawn from
the run's priors), and for GIRAFFE "Re-sample background" and "Add object" -- and one folder per
object. A GIRAFFE object has sliders for its translation (x, y; z only when the object prior has
``ground: false``, else the object rests on the ground), rotation about +z (degrees) and scale,
buttons that draw a new shape or appearance code for it, and "Remove object". GRAF has one object
and no poses: its folder only re-samples the two codes.

Every control edits :attr:`GanRun.scene` (through :mod:`nerfgen.viewer.scene_edits`: an edited copy
put in place by one assignment) and then asks for a re-render.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import viser
from nerfgen.viewer.scene_edits import (
    new_background,
    posed,
    present_slots,
    resampled,
    with_object,
    without_object,
)

MAX_SLOTS = 16
"""Most object slots a scene may grow to through "Add object"."""
STEP = 0.01
"""Step of the translation and scale sliders (world units)."""


@dataclass(frozen=True)
class PoseRanges:
    """Slider ranges of an object's pose (``(low, high)`` each)."""

    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]
    scale: tuple[float, float]

    @classmethod
    def of(cls, config) -> PoseRanges:
        """The object prior's ranges of a :class:`~nerfgen.gan.config.GanConfig`, widened by half
        their width on each side (at least 0.25; kept inside the scene's box): a little room to
        move objects where training never put them. z spans the box's height."""
        x0, y0, x1, y1 = config.objects.translation
        box = config.aabb
        s0, s1 = config.objects.scale
        return cls(_widened(x0, x1, box[0], box[3]), _widened(y0, y1, box[1], box[4]), (box[2], box[5]),
                   (0.5 * s0, 1.5 * s1))


def _widened(lo: float, hi: float, floor: float, ceiling: float) -> tuple[float, float]:
    pad = max(0.5 * (hi - lo), 0.25)
    a, b = max(lo - pad, floor), min(hi + pad, ceiling)
    return (a, b) if a < b else (lo - pad, hi + pad)


def _clamped(value: float, bounds: tuple[float, float]) -> float:
    return min(max(float(value), bounds[0]), bounds[1])


class ObjectFolder:
    """One object's folder: pose sliders (GIRAFFE), re-sample buttons, remove (GIRAFFE)."""

    def __init__(self, gui: viser.GuiApi, panel: ObjectsPanel, k: int) -> None:
        self.k = k
        codes = panel.run.scene
        self.x = self.y = self.z = self.rotation = self.scale = self.remove = None
        with gui.add_folder(f"Object {k + 1}" if panel.giraffe else "Object") as self.folder:
            if panel.giraffe:
                r, t = panel.ranges, codes.translation[0, k]
                self.x = gui.add_slider("x", *r.x, STEP, _clamped(t[0], r.x), hint="translation along x")
                self.y = gui.add_slider("y", *r.y, STEP, _clamped(t[1], r.y), hint="translation along y")
                if not panel.ground:
                    self.z = gui.add_slider("z", *r.z, STEP, _clamped(t[2], r.z), hint="height of the centre")
                self.rotation = gui.add_slider("Rotation", 0.0, 360.0, 1.0, float(codes.rotation[0, k]) % 360.0,
                                               hint="degrees about +z")
                self.scale = gui.add_slider("Scale", *r.scale, STEP, _clamped(codes.scale[0, k], r.scale),
                                            hint="half side of the object's cube")
                for name in ("x", "y", "z", "rotation", "scale"):
                    slider = getattr(self, name)
                    if slider is not None:
                        slider.on_update(lambda _, name=name, slider=slider: panel.pose(k, **{name: slider.value}))
            self.shape = gui.add_button("Re-sample shape", icon=viser.Icon.CUBE, hint="a new random shape code")
            self.appearance = gui.add_button("Re-sample appearance", icon=viser.Icon.PALETTE,
                                             hint="a new random appearance code")
            self.shape.on_click(lambda _: panel.resample(k, "shape"))
            self.appearance.on_click(lambda _: panel.resample(k, "appearance"))
            if panel.giraffe:
                self.remove = gui.add_button("Remove object", icon=viser.Icon.TRASH, color="red")
                self.remove.on_click(lambda _: panel.remove_object(k))


class ObjectsPanel:
    """The objects of a GAN run's scene (module docstring).

    Args:
        gui: the server's GUI.
        run: a :class:`~nerfgen.gan.run.GanRun`; its :attr:`scene` is what the controls edit.
        changed: called after every edit (re-render the tabs).
    """

    def __init__(self, gui: viser.GuiApi, run, changed: Callable[[], None]) -> None:
        self.gui, self.run, self.changed = gui, run, changed
        config = run.config
        self.giraffe = config.model != "graf"
        self.ground = bool(config.objects.ground)
        self.ranges = PoseRanges.of(config)
        self.objects: dict[int, ObjectFolder] = {}
        self._lock = threading.RLock()  # edits and folder changes come from viser's callback threads
        self._seed = 0  # GanRun starts on scene 0 of seed 0
        self._rng = torch.Generator().manual_seed(self._seed)
        with gui.add_folder("Objects") as self.folder:
            self.seed = gui.add_number("Seed", self._seed, min=0, max=2**31 - 1, step=1,
                                       hint="the scene drawn from the run's priors with this seed")
            self.new_scene_button = gui.add_button("New scene", icon=viser.Icon.DICE, hint="the next seed's scene")
            self.background = self.add = None
            if self.giraffe:
                self.background = gui.add_button("Re-sample background", icon=viser.Icon.PHOTO,
                                                 hint="new background shape and appearance codes")
                self.add = gui.add_button("Add object", icon=viser.Icon.PLUS, hint="one more object from the prior")
            self.status = gui.add_markdown("")
        self.seed.on_update(lambda _: self._seed_changed())
        self.new_scene_button.on_click(lambda _: self.new_scene(self._seed + 1))
        if self.giraffe:
            self.background.on_click(lambda _: self.resample_background())
            self.add.on_click(lambda _: self.add_object())
        self._rebuild()

    # -- edits -----------------------------------------------------------------------------------
    def _apply(self, edit: Callable) -> None:
        with self._lock:
            self.run.scene = edit(self.run.scene)
        self.changed()

    def pose(self, k: int, **pose: float) -> None:
        """Move, turn or scale object ``k`` (``x``, ``y``, ``z``, ``rotation``, ``scale``)."""
        self._apply(lambda codes: posed(codes, k, ground=self.ground, **pose))

    def resample(self, k: int, part: str) -> None:
        """Draw object ``k``'s ``"shape"`` or ``"appearance"`` code again."""
        cfg = self.run.config
        self._apply(lambda codes: resampled(codes, k, part, self._rng, cfg.appearance_modes, cfg.appearance_spread))

    def resample_background(self) -> None:
        """Draw the background's codes again (GIRAFFE)."""
        self._apply(lambda codes: new_background(codes, self._rng))

    def add_object(self) -> int | None:
        """Add an object drawn from the prior (pose and codes); returns its slot, or None when the
        scene already has :data:`MAX_SLOTS` objects."""
        with self._lock:
            codes = self.run.scene
            if len(present_slots(codes)) >= MAX_SLOTS:
                self._show_status(f"at most {MAX_SLOTS} objects")
                return None
            new = self.run.codes(1, seed=int(torch.randint(2**31 - 1, (1,), generator=self._rng)), slots=1)
            self.run.scene, k = with_object(codes, new)
            with self.folder:
                self.objects[k] = ObjectFolder(self.gui, self, k)
            self._show_status()
        self.changed()
        return k

    def remove_object(self, k: int) -> None:
        """Take object ``k`` out of the scene (and its folder out of the panel)."""
        with self._lock:
            self.run.scene = without_object(self.run.scene, k)
            folder = self.objects.pop(k, None)
            if folder is not None:
                folder.folder.remove()
            self._show_status()
        self.changed()

    def new_scene(self, seed: int) -> None:
        """Show the scene the run's priors give for ``seed`` (its trained number of slots)."""
        with self._lock:
            self._seed = int(seed)
            self._rng.manual_seed(self._seed)
            self.run.scene = self.run.codes(1, seed=self._seed)
            self.seed.value = self._seed  # its callback sees the scene already there
            self._rebuild()
        self.changed()

    def _seed_changed(self) -> None:
        if int(self.seed.value) != self._seed:
            self.new_scene(int(self.seed.value))

    # -- folders ---------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """One folder per object of the scene (GRAF: the one object)."""
        with self._lock:
            for folder in self.objects.values():
                folder.folder.remove()
            slots = present_slots(self.run.scene) if self.giraffe else [0]
            with self.folder:
                self.objects = {k: ObjectFolder(self.gui, self, k) for k in slots}
            self._show_status()

    def _show_status(self, note: str = "") -> None:
        if not self.giraffe:
            text = "GRAF: one object, no poses"
        else:
            n, slots = len(self.objects), self.run.scene.slots
            text = f"{n} object{'s' if n != 1 else ''} in {slots} slots (trained with {self.run.slots})"
        self.status.content = f"{text}; {note}" if note else text
