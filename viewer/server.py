"""The viewer: a viser server whose tabs each get nerfgen renders of their camera.

>>> viewer = Viewer(ViewerScene.from_run("runs/lego"))  # doctest: +SKIP
>>> viewer.serve_forever()                               # doctest: +SKIP
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import viser
from nerfgen.viewer.frames import ViewCamera, viser_pose
from nerfgen.viewer.gate import ModelGate, TrainStats
from nerfgen.viewer.layout_panel import LayoutPanel
from nerfgen.viewer.objects_panel import ObjectsPanel
from nerfgen.viewer.panels import MAX_SIDE, MIN_SIDE, RenderPanel, TrainingPanel
from nerfgen.viewer.path_panel import CameraPathPanel
from nerfgen.viewer.sources_panel import SourcesPanel
from nerfgen.viewer.render_loop import ClientRenderer, FrameStats, RenderSettings
from nerfgen.viewer.scene import ViewerScene
from nerfgen.viewer.time_panel import TimePanel

import nerfgen

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATS_EVERY = 0.25
"""Seconds between training-panel updates."""


class _LocalServer(viser.ViserServer):
    """A viser server that never opens a share tunnel: it serves the viewer and nothing else,
    whatever a client asks for."""

    def request_share_url(self, verbose: bool = True) -> None:
        return None


def view_of(client: viser.ClientHandle) -> ViewCamera:
    """The current camera of a browser tab."""
    cam = client.camera
    return ViewCamera(tuple(map(float, cam.position)), tuple(map(float, cam.wxyz)), float(cam.fov),
                      cam.image_width / max(cam.image_height, 1))


class Viewer:
    """Serves a :class:`ViewerScene` in the browser.

    Args:
        scene: what to show.
        host: address to bind; anything but loopback exposes the viewer (a warning is printed).
        port: port to bind (viser takes the next free one when it is busy; see :attr:`url`).
        max_resolution: longest side of a still frame.
        training: show the training panel (``scene.run`` is being trained, see :meth:`train`).

    A GAN run (GRAF or GIRAFFE) also gets the objects panel (:class:`ObjectsPanel`): its scene's
    objects, their poses and codes, a new scene or background. A generated scene (kind ``scene``)
    gets the layout panel (:class:`LayoutPanel`): move, turn, scale or hide its objects, save the
    layout. Not while it trains: the run's layout is then the training's, which settles it. A run
    whose scene changes over time (:class:`nerfgen.renderable.TimeConditioned`) gets the time panel
    (:class:`TimePanel`): a time slider and playback, live while training too.
    """

    def __init__(self, scene: ViewerScene, host: str = "127.0.0.1", port: int = 7007, max_resolution: int = 512,
                 training: bool = False) -> None:
        if not MIN_SIDE <= max_resolution <= MAX_SIDE:
            raise ValueError(f"max resolution must be in [{MIN_SIDE}, {MAX_SIDE}] pixels, got {max_resolution}")
        if host not in LOOPBACK:
            print(f"nerfgen: warning: the viewer listens on {host}:{port}; anyone who can reach this machine "
                  "can open it (and pause training) -- there is no authentication", file=sys.stderr)
        self.scene = scene
        self.gate = ModelGate()
        self.settings = RenderSettings(max_side=max_resolution)
        self.server = _LocalServer(host=host, port=port, verbose=False)
        self.url = f"http://{host}:{self.server.get_port()}"
        self.renderers: dict[int, ClientRenderer] = {}
        self._lock = threading.Lock()
        self._stats_at = 0.0
        self.server.gui.configure_theme(show_share_button=False, control_width="medium")
        self.server.gui.main_panel.dock_right()
        self._place_camera()
        self.render_panel = RenderPanel(self.server.gui, self.settings, self.refresh, scene.modes)
        self.objects_panel = ObjectsPanel(self.server.gui, scene.run, self.refresh) if scene.generated else None
        self.layout_panel = (LayoutPanel(self.server.gui, scene.run, self.refresh, self._editing)
                             if scene.layout_editable and not training else None)
        self.training_panel = TrainingPanel(self.server.gui, self.gate) if training else None
        self.time_panel = (TimePanel(self.server.gui, scene.run, self.settings, self._time_changed)
                           if scene.time_conditioned else None)
        self.sources_panel = (SourcesPanel(self.server.gui, scene.run, self.refresh, self._editing)
                              if isinstance(scene.run, nerfgen.SourceViewed) and not training else None)
        self.show_cameras = self.server.gui.add_checkbox("Training cameras", True,
                                                         hint="frustums with thumbnails; click one to jump there")
        self.path_panel = CameraPathPanel(self.server, scene, self.gate, view_of)
        self.frustums = self._add_frustums()
        self.show_cameras.on_update(lambda _: self._toggle_frustums())
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        print(f"nerfgen viewer: {self.url}", flush=True)

    # -- scene -----------------------------------------------------------------------------------
    def _place_camera(self) -> None:
        """Start new tabs a little outside the run's orbit (behind the ring of training cameras),
        looking at its centre, with its up direction."""
        orbit = self.scene.orbit
        center = torch.tensor(orbit.center)
        start = center + 1.25 * (orbit.cameras(8).c2w[1, :, 3] - center)
        self.server.scene.set_up_direction(orbit.up)
        self.server.initial_camera.position = tuple(start.tolist())
        self.server.initial_camera.look_at = orbit.center
        self.server.initial_camera.up = orbit.up
        self.server.initial_camera.fov = 2 * math.atan(0.5 * orbit.height / orbit.fy)

    def _add_frustums(self) -> list:
        cams = self.scene.train_cameras
        if cams is None:
            return []
        handles = []
        scale = 0.06 * self.scene.orbit.radius
        for i in range(len(cams)):
            wxyz, position = viser_pose(cams.c2w[i])
            fov = 2 * math.atan(0.5 * cams.height / float(cams.fy[i]))
            image = self.scene.thumbnails[i] if self.scene.thumbnails is not None else None
            handle = self.server.scene.add_camera_frustum(
                f"/training_cameras/{i:04d}", fov, cams.width / cams.height, scale=scale, image=image,
                format="jpeg", jpeg_quality=80, color=(60, 90, 200), wxyz=wxyz, position=position)
            handle.on_click(lambda event, i=i: self.jump_to_training_camera(event.client, i))
            handles.append(handle)
        return handles

    def _toggle_frustums(self) -> None:
        for handle in self.frustums:
            handle.visible = bool(self.show_cameras.value)

    def jump_to_training_camera(self, client: viser.ClientHandle, index: int) -> None:
        """Move ``client``'s view to training camera ``index`` (pose and field of view)."""
        cams = self.scene.train_cameras
        wxyz, position = viser_pose(cams.c2w[index])
        with client.atomic():
            client.camera.fov = 2 * math.atan(0.5 * cams.height / float(cams.fy[index]))
            client.camera.wxyz = wxyz
            client.camera.position = position

    # -- tabs ------------------------------------------------------------------------------------
    def _connect(self, client: viser.ClientHandle) -> None:
        def show(image: np.ndarray) -> None:
            client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.settings.jpeg_quality)

        renderer = ClientRenderer(show, self.scene, self.gate, self.settings, self._frame_done)
        with self._lock:
            self.renderers[client.client_id] = renderer
        client.camera.on_update(lambda camera: renderer.update(view_of(camera.client)))
        renderer.update(view_of(client))

    def _disconnect(self, client: viser.ClientHandle) -> None:
        with self._lock:
            renderer = self.renderers.pop(client.client_id, None)
        if renderer is not None:
            renderer.stop()

    def _frame_done(self, stats: FrameStats) -> None:
        self.render_panel.show_frame(stats)

    @contextmanager
    def _editing(self) -> Iterator[None]:
        """Hold the model for an edit of the scene: frames in flight are abandoned first (between
        bands; they would be stale), and none renders while the edit is put in place."""
        self.refresh()
        with self.gate.render():
            yield

    def _time_changed(self, moving: bool) -> None:
        """The time shown changed: every tab again (sized as while moving during playback)."""
        if not moving:
            self.refresh()
            return
        with self._lock:
            renderers = list(self.renderers.values())
        for renderer in renderers:
            renderer.animate()

    def refresh(self) -> None:
        """Render every tab again (settings changed)."""
        with self._lock:
            renderers = list(self.renderers.values())
        for renderer in renderers:
            renderer.refresh()

    # -- training --------------------------------------------------------------------------------
    def train(self, engine):
        """Run ``engine`` (a :func:`nerfgen.reconstruction` or :func:`nerfgen.generation` run) with
        this viewer watching: renders take turns with its steps, the panel shows its progress and
        can pause it. Returns the run's summary."""
        with self.gate.training():
            summary = engine.run([self._on_step])
        if self.training_panel is not None:
            self.training_panel.show(self.gate.stats)
        return summary

    def _on_step(self, report: nerfgen.StepReport) -> None:
        now = time.monotonic()
        stats = TrainStats.of(report)
        if self.training_panel is not None and (self.gate.paused or now - self._stats_at >= STATS_EVERY):
            self._stats_at = now  # shown before a pause takes hold, so the panel has the step it stopped at
            self.training_panel.show(stats)
        self.gate.between_steps(stats)

    # -- lifetime --------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Block until Ctrl+C, then stop."""
        print(f"nerfgen viewer: serving {self.url} (Ctrl+C to quit)", flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop every render thread and the server."""
        with self._lock:
            renderers = list(self.renderers.values())
            self.renderers.clear()
        for renderer in renderers:
            renderer.stop()
        if self.time_panel is not None:
            self.time_panel.stop()
        self.server.stop()
