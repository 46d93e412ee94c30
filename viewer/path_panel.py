"""Camera paths in the viewer: keyframes from the current view, a preview, and the video.

The video is rendered by the same code as ``nerfgen render --camera-path`` (``Run.render_video`` of
``CameraPath.cameras()``), and the path is saved beside it as nerfstudio ``camera_path.json``. A GAN
run (no ``render_video``) renders the scene the objects panel shows, frame by frame through
``render``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import viser
from nerfgen.viewer.frames import ViewCamera, viser_pose
from nerfgen.viewer.gate import ModelGate
from nerfgen.viewer.scene import ViewerScene

from nerfgen import CameraPath, Keyframe, TimeConditioned, path_from_keyframes, write_camera_path

VIDEO_SUFFIXES = (".mp4", ".gif")


def video_target(output_dir: Path, name: str) -> Path:
    """``output_dir/renders/name``; the name must be a plain file name ending in .mp4 or .gif
    (the browser never chooses where on the machine files go)."""
    if not name or Path(name).name != name or name.startswith(".") or Path(name).suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"video name {name!r}: expected a plain file name ending in .mp4 or .gif")
    return output_dir / "renders" / name


class CameraPathPanel:
    """Keyframes, preview and rendering of a camera path.

    Args:
        server: the viser server (GUI and scene).
        scene: the scene (the run, where videos go).
        gate: held while the video renders.
        view_of: the current :class:`ViewCamera` of a tab.
    """

    def __init__(self, server: viser.ViserServer, scene: ViewerScene, gate: ModelGate,
                 view_of: Callable[[viser.ClientHandle], ViewCamera]) -> None:
        self.server, self.scene, self.gate, self.view_of = server, scene, gate, view_of
        self.keyframes: list[Keyframe] = []
        self._nodes: list = []  # scene handles of the drawn path
        self._render_lock = threading.Lock()
        gui = server.gui
        width, height = scene.orbit.width, scene.orbit.height
        with gui.add_folder("Camera path", expand_by_default=False):
            self.add = gui.add_button("Add keyframe", icon=viser.Icon.CAMERA_PLUS, hint="the current view")
            self.clear = gui.add_button("Clear keyframes", icon=viser.Icon.TRASH)
            self.seconds = gui.add_number("Seconds", 4.0, min=0.1, max=600.0, step=0.1)
            self.fps = gui.add_number("FPS", 24, min=1, max=120, step=1)
            self.loop = gui.add_checkbox("Loop", False, hint="return from the last keyframe to the first")
            self.width = gui.add_number("Width", int(width), min=16, max=4096, step=1)
            self.height = gui.add_number("Height", int(height), min=16, max=4096, step=1)
            self.preview = gui.add_slider("Preview", 0.0, 1.0, 0.001, 0.0, hint="move the view along the path")
            self.play = gui.add_button("Play preview", icon=viser.Icon.PLAYER_PLAY)
            self.name = gui.add_text("Video", "camera_path.mp4", hint="file name under <run>/renders (.mp4 or .gif)")
            self.render = gui.add_button("Render video", icon=viser.Icon.MOVIE)
            self.status = gui.add_markdown("no keyframes")
        self.add.on_click(lambda event: self.add_keyframe(self.view_of(event.client)))
        self.clear.on_click(lambda _: self.clear_keyframes())
        self.preview.on_update(self._preview_moved)
        self.play.on_click(lambda event: self.play_preview(event.client))
        self.render.on_click(lambda _: self.render_video())

    def _preview_moved(self, event: viser.GuiEvent) -> None:
        if event.client is not None:
            self.show_at(event.client, float(self.preview.value))

    def add_keyframe(self, view: ViewCamera) -> None:
        """Append ``view`` as a keyframe and redraw the path."""
        run = self.scene.run  # a keyframe of a scene that changes over time carries the instant shown
        self.keyframes.append(Keyframe(view.c2w(), math.degrees(view.fov), view.aspect,
                                       float(run.time) if isinstance(run, TimeConditioned) else None))
        self._draw()

    def clear_keyframes(self) -> None:
        self.keyframes.clear()
        self._draw()

    def path(self) -> CameraPath:
        """The path the current settings describe (raises ValueError without keyframes)."""
        return path_from_keyframes(self.keyframes, float(self.seconds.value), float(self.fps.value),
                                   int(self.width.value), int(self.height.value), bool(self.loop.value))

    def _draw(self) -> None:
        scene = self.server.scene
        for node in self._nodes:
            node.remove()
        self._nodes.clear()
        size = 0.08 * self.scene.orbit.radius
        for i, kf in enumerate(self.keyframes):
            wxyz, position = viser_pose(kf.c2w)
            self._nodes.append(scene.add_camera_frustum(
                f"/camera_path/keyframe_{i}", math.radians(kf.fov), kf.aspect, scale=size, color=(230, 120, 20),
                wxyz=wxyz, position=position))
        if len(self.keyframes) > 1:
            dense = self.path().c2w[:, :, 3].numpy().astype(np.float32)
            self._nodes.append(scene.add_line_segments(
                "/camera_path/line", np.stack([dense[:-1], dense[1:]], axis=1), colors=(230, 120, 20),
                thickness=0.01 * self.scene.orbit.radius))
        n = len(self.keyframes)
        self.status.content = f"{n} keyframe{'s' if n != 1 else ''}" if n else "no keyframes"

    def show_at(self, client: viser.ClientHandle, t: float) -> None:
        """Move ``client``'s view to time ``t`` in [0, 1] along the path."""
        if not self.keyframes:
            return
        path = self.path()
        i = min(int(round(t * (len(path) - 1))), len(path) - 1)
        wxyz, position = viser_pose(path.c2w[i])
        with client.atomic():
            client.camera.fov = math.radians(float(path.fov[i]))
            client.camera.wxyz = wxyz
            client.camera.position = position

    def play_preview(self, client: viser.ClientHandle | None) -> None:
        """Fly ``client``'s view along the path in real time."""
        if client is None or not self.keyframes:
            return
        path = self.path()
        for i in range(len(path)):
            self.show_at(client, i / max(len(path) - 1, 1))
            time.sleep(1 / path.fps)

    def render_video(self) -> Path | None:
        """Write ``renders/<name>`` and the path beside it (``.json``); returns the video's path."""
        try:
            target = video_target(self.scene.output_dir, str(self.name.value))
            path = self.path()
        except ValueError as exc:
            self.status.content = f"**cannot render:** {exc}"
            return None
        if not self._render_lock.acquire(blocking=False):
            self.status.content = "already rendering"
            return None
        try:
            write_camera_path(target.with_suffix(".json"), path)
            self.status.content = f"rendering {len(path)} frames at {path.width}x{path.height} ..."
            start = time.perf_counter()
            with self.gate.render():
                n = self.scene.run.render_path(path, target)  # at the keyframes' times, for a dynamic run
            self.status.content = f"wrote {target} ({n} frames, {time.perf_counter() - start:.1f} s)"
            return target
        finally:
            self._render_lock.release()
