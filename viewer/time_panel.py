"""Time in the viewer, for runs whose scene changes over time (:class:`nerfgen.renderable.TimeConditioned`).

The "Time" folder has a slider over ``[0, 1]`` (the capture's first frame at 0, its last at 1),
play / pause (time runs while the camera is free to move; frames are sized as while the camera
moves, so playback stays fluid), the seconds one pass of time takes, and whether playback loops.
Every frame of every tab renders at the slider's time (:attr:`RenderSettings.time`); the run's own
:attr:`~nerfgen.renderable.TimeConditioned.time` follows it, so keyframes of a camera path take
the time shown when they are added, and anything rendered without naming a time shows it.
Live while training too: the run being trained is the one shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import viser
from nerfgen.viewer.render_loop import RenderSettings

from nerfgen import TimeConditioned

FRAME_SECONDS = 1 / 12
"""How often playback advances time (and asks for a frame)."""


class TimePanel:
    """The time slider and its playback (module docstring).

    Args:
        gui: the server's GUI.
        run: the time-conditioned run shown.
        settings: render settings; :attr:`RenderSettings.time` is what the slider sets.
        changed: ``changed(moving)`` asks every tab for a new frame (``moving``: sized as while the
            camera moves, during playback; else at full resolution).
    """

    def __init__(self, gui: viser.GuiApi, run: TimeConditioned, settings: RenderSettings,
                 changed: Callable[[bool], None]) -> None:
        self.run, self.settings, self.changed = run, settings, changed
        settings.time = float(run.time)
        self._playing = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        instants = run.times
        with gui.add_folder("Time"):
            self.slider = gui.add_slider("Time", 0.0, 1.0, 0.001, settings.time,
                                         hint="the instant shown: 0 is the capture's first frame, 1 its last")
            self.play = gui.add_button("Play", icon=viser.Icon.PLAYER_PLAY, hint="let time run")
            self.seconds = gui.add_number("Seconds per pass", 4.0, min=0.5, max=120.0, step=0.5,
                                          hint="how long time takes to run from 0 to 1")
            self.loop = gui.add_checkbox("Loop", True, hint="start again at 0 after 1")
            self.info = gui.add_markdown(f"{len(instants)} training instants")
        self.slider.on_update(lambda _: self.set_time(float(self.slider.value), moving=self._playing.is_set()))
        self.play.on_click(lambda _: self.toggle())
        self._thread = threading.Thread(target=self._run, name="viewer-time", daemon=True)
        self._thread.start()

    @property
    def playing(self) -> bool:
        return self._playing.is_set()

    def set_time(self, t: float, moving: bool = False) -> None:
        """Show instant ``t`` (clamped to [0, 1]) in every tab."""
        t = min(max(float(t), 0.0), 1.0)
        with self._lock:
            if t == self.settings.time:
                return
            self.settings.time = t
            self.run.time = t
        self.changed(moving)

    def toggle(self) -> None:
        """Play or pause."""
        if self._playing.is_set():
            self._playing.clear()
            self.play.label, self.play.icon = "Play", viser.Icon.PLAYER_PLAY
            self.changed(False)  # the paused instant at full resolution
        else:
            self._playing.set()
            self.play.label, self.play.icon = "Pause", viser.Icon.PLAYER_PAUSE

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds`` of playback (wrapping or stopping at 1)."""
        t = self.settings.time + seconds / max(float(self.seconds.value), 1e-3)
        if t > 1.0 and self.loop.value:
            t -= 1.0
        elif t >= 1.0:
            t = 1.0
            self.toggle()
        self.set_time(t, moving=self.playing)
        self.slider.value = round(t, 3)

    def stop(self) -> None:
        """End playback for good (the viewer is stopping)."""
        self._stopped = True
        self._playing.set()

    def _run(self) -> None:
        while not self._stopped:
            self._playing.wait()
            last = time.monotonic()
            while self._playing.is_set() and not self._stopped:
                time.sleep(FRAME_SECONDS)
                now = time.monotonic()
                self.advance(now - last)
                last = now
