"""The side panel: render settings, frame statistics and the training controls."""

from __future__ import annotations

from collections.abc import Callable

import viser
from nerfgen.viewer.frames import MODES
from nerfgen.viewer.gate import ModelGate, TrainStats
from nerfgen.viewer.render_loop import FrameStats, RenderSettings

import nerfgen

MIN_SIDE, MAX_SIDE = 32, 4096
"""Range of the still-frame resolution (longest side, pixels)."""


class RenderPanel:
    """Render mode, split view, resolution and the last frame's numbers.

    Args:
        gui: the server's GUI (shared by every tab).
        settings: changed in place when a control changes.
        changed: called after a change (re-render the tabs).
        modes: the render modes the run can show (a GAN run has no normals).
    """

    def __init__(self, gui: viser.GuiApi, settings: RenderSettings, changed: Callable[[], None],
                 modes: tuple[str, ...] = MODES) -> None:
        self.settings, self.changed = settings, changed
        hints = {"rgb": "rgb", "depth": "colour-mapped depth", "accumulation": "accumulated opacity",
                 "normals": "density normals"}
        with gui.add_folder("Render"):
            self.mode = gui.add_dropdown("Mode", modes, initial_value=settings.mode,
                                         hint=", ".join(hints.get(m, m) for m in modes))
            self.split = gui.add_checkbox("Split view", initial_value=settings.split_mode is not None,
                                          hint="show a second mode right of the split line")
            self.split_mode = gui.add_dropdown("Right side", modes, initial_value=settings.split_mode or "depth")
            self.split_at = gui.add_slider("Split at", 0.0, 1.0, 0.01, settings.split)
            self.max_side = gui.add_slider("Max resolution", MIN_SIDE, MAX_SIDE, 16, settings.max_side,
                                           hint="longest side of a still frame (pixels)")
            self.fps = gui.add_slider("Moving fps", 1, 30, 1, settings.moving_fps,
                                      hint="frame rate that low-resolution frames are sized for while the camera moves")
            self.refine = gui.add_checkbox("Refine stills", initial_value=settings.refine_stills,
                                           hint="a baked run: once the camera stops, render the view again from the "
                                                "run's field (sharper, slower)")
            self.stats = gui.add_markdown("waiting for a browser camera")
        for control in (self.mode, self.split, self.split_mode, self.split_at, self.max_side, self.fps, self.refine):
            control.on_update(lambda _: self._apply())

    def _apply(self) -> None:
        s = self.settings
        s.mode = self.mode.value
        s.split_mode = self.split_mode.value if self.split.value else None
        s.split = float(self.split_at.value)
        s.max_side = int(self.max_side.value)
        s.moving_fps = float(self.fps.value)
        s.refine_stills = bool(self.refine.value)
        self.changed()

    def show_frame(self, stats: FrameStats) -> None:
        """Put the last frame's size, time and rays/s in the panel."""
        kind = "refined still" if stats.refined else "still" if stats.still else "moving"
        self.stats.content = (f"{kind} frame {stats.width}x{stats.height} in {stats.seconds * 1000:.0f} ms "
                              f"({stats.rays_per_second:,.0f} rays/s)")


class TrainingPanel:
    """Live training numbers, pause/resume, and the share of time that goes to training."""

    def __init__(self, gui: viser.GuiApi, gate: ModelGate) -> None:
        self.gate = gate
        with gui.add_folder("Training"):
            self.stats = gui.add_markdown("starting")
            self.pause = gui.add_button("Pause training", icon=viser.Icon.PLAYER_PAUSE)
            self.share = gui.add_slider("Training share", 0.05, 0.95, 0.05, gate.train_share,
                                        hint="fraction of the time that goes to training while the view renders")
        self.pause.on_click(lambda _: self._toggle())
        self.share.on_update(lambda _: self._set_share())

    def _set_share(self) -> None:
        self.gate.train_share = float(self.share.value)

    def _toggle(self) -> None:
        if self.gate.paused:
            self.gate.resume()
            self.pause.label, self.pause.icon = "Pause training", viser.Icon.PLAYER_PAUSE
        else:
            self.gate.pause()
            self.pause.label, self.pause.icon = "Resume training", viser.Icon.PLAYER_PLAY
        self.show(self.gate.stats)

    def show(self, stats: TrainStats) -> None:
        """Step, the run's figures and rates of the latest step (and whether training runs)."""
        state = "finished" if stats.done else "paused" if self.gate.paused else "training"
        figures, rates = nerfgen.format_figures(stats.figures), nerfgen.format_figures(stats.rates)
        self.stats.content = f"**{state}** · step {stats.step:,}  \n{figures}  \n{rates}"
        if stats.done:
            self.pause.disabled = True

