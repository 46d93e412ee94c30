"""One render thread per browser tab, with dynamic resolution.

While the camera moves, frames are sized from the measured rays/s so that one renders in about
``1 / moving_fps`` seconds (less the training's share while a run trains); once the camera has
been still for :data:`STILL_AFTER` seconds the view is rendered again at full resolution. Only the
newest camera is ever rendered (updates that arrive during a render replace each other), and a
full-resolution render is abandoned between bands of rows as soon as the camera moves (nerfstudio's
viewer does the same): its result would be stale. A moving-camera frame is small and is always
shown, being the freshest there is. A run that can be refined (a bake, :class:`nerfgen.Refinable`)
draws its moving frames and a first still itself, then the still again from its sharper render
(the field), unless the panel turns that off.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import nerfgen
from nerfgen.viewer.frames import ViewCamera, compose, frame_size, preview_side, render_view
from nerfgen.viewer.gate import ModelGate
from nerfgen.viewer.scene import ViewerScene

STILL_AFTER = 0.2
"""Seconds without camera updates after which the view is refined to full resolution."""


@dataclass
class RenderSettings:
    """What to render; shared by all tabs and changed by the panel."""

    mode: str = "rgb"
    """Render mode (``viewer.frames.MODES``)."""
    split_mode: str | None = None
    """Mode of the right part of a split view; None shows ``mode`` alone."""
    split: float = 0.5
    """Where the split falls, as a fraction of the width."""
    max_side: int = 512
    """Longest side of a still frame, pixels."""
    moving_fps: float = 8.0
    """Frame rate to size moving frames for."""
    jpeg_quality: int = 90
    """JPEG quality of the frames sent to the browser."""
    time: float | None = None
    """The instant shown of a run whose scene changes over time (None: a static run)."""
    refine_stills: bool = True
    """Render stills again from a refinable run's sharper render (a bake's field)."""

    @property
    def normals(self) -> bool:
        return "normals" in (self.mode, self.split_mode)


@dataclass
class FrameStats:
    """How the last frame went."""

    width: int
    height: int
    seconds: float
    rays_per_second: float
    still: bool
    refined: bool = False


class ClientRenderer:
    """Renders one browser tab's camera into its background image, on its own thread.

    Args:
        show: ``show(image [H, W, 3] uint8)`` puts a frame in the tab.
        scene: what to render.
        gate: shared with training, when a run is training.
        settings: render settings (read at each frame).
        on_frame: called with each frame's :class:`FrameStats` (for the panel).
    """

    def __init__(self, show: Callable, scene: ViewerScene, gate: ModelGate, settings: RenderSettings,
                 on_frame: Callable[[FrameStats], None] | None = None) -> None:
        self.show, self.scene, self.gate, self.settings, self.on_frame = show, scene, gate, settings, on_frame
        self.rays_per_second = 1e4  # a low first guess (a small first frame); measured from every frame on
        self._cond = threading.Condition()
        self._view: ViewCamera | None = None
        self._version = 0
        self._moved_at = 0.0
        self._shown: tuple[int, int, bool] = (-1, 0, False)  # (version, longest side, refined) of the frame on screen
        self._stopped = False
        self.last: tuple[ViewCamera, np.ndarray] | None = None  # the camera and image of the frame on screen
        self._thread = threading.Thread(target=self._run, name="viewer-render", daemon=True)
        self._thread.start()

    def update(self, view: ViewCamera) -> None:
        """The tab's camera moved."""
        with self._cond:
            self._view, self._version, self._moved_at = view, self._version + 1, time.monotonic()
            self._cond.notify()

    def refresh(self) -> None:
        """Settings changed: render the same camera again, at full resolution."""
        with self._cond:
            self._version += 1
            self._cond.notify()

    def animate(self) -> None:
        """The scene changed while the camera stayed (time playing): render it again, sized as
        while the camera moves."""
        with self._cond:
            self._version, self._moved_at = self._version + 1, time.monotonic()
            self._cond.notify()

    def settled(self) -> bool:
        """Whether the frame on screen is the final render of the latest camera: full resolution, and
        refined where the run refines stills."""
        with self._cond:
            version, side, refined = self._shown
            return (self._view is not None and version == self._version and side == self.settings.max_side
                    and (refined or not self._refines()))

    def _refines(self) -> bool:
        return self.settings.refine_stills and isinstance(self.scene.run, nerfgen.Refinable)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _next_job(self) -> tuple[int, ViewCamera, int, bool, bool] | None:
        """(version, camera, longest side, still, refined) to render next, or None to wait."""
        if self._view is None:
            return None
        full = self.settings.max_side
        still = time.monotonic() - self._moved_at >= STILL_AFTER
        version, side, refined = self._shown
        final = side >= full and (refined or not self._refines())
        if version == self._version and (final or not still):
            return None
        if still:  # a refinable run's own still first (fast), then the refined one
            return self._version, self._view, full, True, version == self._version and side >= full
        budget = self.gate.render_share / self.settings.moving_fps  # training takes the rest of each frame's time
        fast = preview_side(self.rays_per_second, budget, self._view.aspect, full)
        return self._version, self._view, fast, fast >= full, False

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                while job is None and not self._stopped:
                    self._cond.wait(timeout=STILL_AFTER / 2)
                    job = self._next_job()
                if self._stopped:
                    return
            try:
                self._render(*job)
            except Exception:  # a failed frame must not end the tab's renders
                traceback.print_exc()
                with self._cond:
                    self._shown = (job[0], self.settings.max_side, True)

    def _render(self, version: int, view: ViewCamera, side: int, still: bool, refined: bool) -> None:
        s = self.settings
        width, height = frame_size(view.aspect, side)
        cameras = view.cameras(width, height)
        cancelled = (lambda: self._version != version or self._stopped) if still else (lambda: self._stopped)
        run = self.scene.run.refined() if refined else self.scene.run
        with self.gate.render():
            start = time.perf_counter()
            image = render_view(run, cameras, self.scene.background, s.normals, cancelled, time=s.time,
                                preview=not still)
            seconds = time.perf_counter() - start
        if image is None or self._stopped:
            return  # the camera moved on (this frame would be stale), or the tab is gone
        if not refined:  # moving frames are sized from the run's own speed
            self.rays_per_second = 0.5 * self.rays_per_second + 0.5 * width * height / max(seconds, 1e-6)
        frame = compose(image, s.mode, s.split_mode, s.split)
        self.show(frame)
        self.last = (view, frame)
        with self._cond:
            self._shown = (version, side if side < s.max_side else s.max_side, refined)
        if self.on_frame is not None:
            self.on_frame(FrameStats(width, height, seconds, width * height / max(seconds, 1e-6), still, refined))
