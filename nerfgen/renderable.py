"""What a run that shows a scene offers, whatever its kind: :class:`Renderable`, the protocol the
viewer and the command line talk to (never a kind's name), :class:`RenderTraits` (how it may be
rendered), the editing protocols (:class:`LayoutEditable`, :class:`CodeEditable`), runs seen
through source views (:class:`SourceViewed`), runs drawn fast that refine their stills
(:class:`Refinable`), runs whose scene changes over time (:class:`TimeConditioned`), and
:class:`VideoRenders`, the videos every renderable run shares.

>>> run = nerfgen.load_run("runs/lego")                       # doctest: +SKIP
>>> isinstance(run, Renderable), run.traits.normals           # doctest: +SKIP
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from nerfgen.cameras import CameraPath, Cameras, read_camera_path
from nerfgen.render import ImageOutput


@dataclass(frozen=True)
class RenderTraits:
    """How a run may be rendered and shown.

    Attributes:
        whole_frames: :meth:`Renderable.render` needs the whole frame in one call (GIRAFFE's
            neural renderer is convolutional), so a viewer must not render it in bands of rows.
        normals: it renders normals (``normals=True``).
        training_cameras: ``info.data`` is a capture whose cameras (and images) can be shown.
        previews: :meth:`Renderable.render` takes ``preview=True``: a faster, coarser march for
            the frames a viewer shows while the camera moves.
        band_rays: rays a viewer renders in one call (a band of rows): between bands it checks
            whether the camera moved on, and each call has its own cost.
    """

    whole_frames: bool = False
    normals: bool = True
    training_cameras: bool = False
    previews: bool = False
    band_rays: int = 1 << 14


@runtime_checkable
class Renderable(Protocol):
    """A run that renders any camera: what ``nerfgen view``, ``render`` and ``export`` use.

    ``info`` has at least ``kind``, ``width``, ``height``, ``orbit`` (a :class:`~nerfgen.cameras.Orbit`),
    ``background`` (``white``/``black``) and ``data``.
    """

    info: Any
    path: Path
    traits: RenderTraits

    @property
    def background(self) -> Tensor:
        """``[3]`` the colour the run is shown on."""

    def render(self, cameras: Cameras, index: int = 0, background: Tensor | None = None, normals: bool = False,
               cond: Any = None, chunk: int = 1 << 14) -> ImageOutput:
        """Camera ``index`` of ``cameras``; the image comes back on the CPU."""

    def orbit_cameras(self, frames: int, width: int | None = None, height: int | None = None) -> Cameras:
        """``frames`` cameras on the run's orbit."""

    def render_video(self, cameras: Cameras, output: str | Path, depth: bool = False, fps: float = 30) -> int:
        """Every camera into a video; the frames written."""

    def export_mesh(self, output: str | Path, **options: Any) -> dict:
        """The surface as a mesh file (or a clear error where the run has none)."""


@runtime_checkable
class TimeConditioned(Protocol):
    """A run whose scene changes over time (a dynamic run): ``render(..., time=t)`` shows instant
    ``t`` in ``[0, 1]`` (the capture's first frame at 0, its last at 1); a render that names no
    time shows :attr:`time`. What the viewer's time slider and ``nerfgen render --time`` use."""

    time: float
    """The instant shown when a render names none."""

    @property
    def times(self) -> Tensor:
        """``[k]`` the instants the run was trained on, ascending."""

    def render_sweep(self, output: str | Path, frames: int = 60, width: int | None = None, height: int | None = None,
                     depth: bool = False, fps: float = 30, camera: int = 0) -> int:
        """Time running from 0 to 1 seen from one camera of the orbit, into a video."""


@runtime_checkable
class LayoutEditable(Protocol):
    """A run whose objects are placed by a layout that can be edited without retraining (a
    generated scene): assigning :attr:`layout` changes what the next render shows."""

    layout: Any

    def open_layout(self, path: str | Path) -> None:
        """Place the objects by a layout file."""


@runtime_checkable
class CodeEditable(Protocol):
    """A run that renders one scene of a generator's codes (GRAF / GIRAFFE): :attr:`scene` is
    what is shown; :meth:`codes` draws new ones."""

    scene: Any

    def codes(self, count: int, seed: int = 0, slots: int | None = None) -> Any:
        """``count`` scenes from the run's priors."""


@runtime_checkable
class Refinable(Protocol):
    """A run drawn fast and approximately (a bake) that can hand over a sharper, slower render of the
    same scene (its field): a viewer draws moving frames from the run itself and refines the
    frames of a camera that stays put with :meth:`refined`."""

    def refined(self) -> Renderable:
        """The sharper rendering of the same scene (loaded on first use)."""


@runtime_checkable
class SourceViewed(Protocol):
    """A run that renders its scene from source views (a generalizable run): the viewer draws
    them and renders from any subset of them."""

    def source_views(self) -> Any:
        """The views it renders from (:class:`~nerfgen.generalize.sources.SourceViews`)."""

    def use_sources(self, sources: Any, orbit: bool = True) -> None:
        """Render from ``sources`` from now on."""


class VideoRenders:
    """Videos of whatever a run's :meth:`render` shows, around its ``info.orbit`` or along a camera
    path: what every renderable run shares."""

    info: Any

    def render(self, cameras: Cameras, index: int = 0, **options: Any) -> ImageOutput:
        raise NotImplementedError

    def orbit_cameras(self, frames: int, width: int | None = None, height: int | None = None) -> Cameras:
        """``frames`` cameras around the scene on the run's :class:`Orbit` (at the run's image size
        unless given; one side given keeps the aspect)."""
        return self.info.orbit.cameras(frames, width, height)

    def render_video(self, cameras: Cameras, output: str | Path, depth: bool = False, fps: float = 30) -> int:
        """Render every camera into ``output`` (.mp4 or .gif; colour-mapped depth with ``depth``);
        returns the frames written."""
        from nerfgen.render.display import colorize_depth
        from nerfgen.video import write_video

        def frames():
            for i in range(len(cameras)):
                image = self.render(cameras, i)
                frame = colorize_depth(image.depth, image.opacity) if depth else image.rgb
                yield (frame.clamp(0, 1) * 255 + 0.5).byte().numpy()

        return write_video(frames(), output, fps)

    def render_orbit(self, output: str | Path, frames: int = 120, width: int | None = None, height: int | None = None,
                     depth: bool = False, fps: float = 30) -> int:
        """A 360-degree orbit video (:meth:`orbit_cameras`)."""
        return self.render_video(self.orbit_cameras(frames, width, height), output, depth, fps)

    def render_path(self, path: CameraPath | str | Path, output: str | Path, width: int | None = None,
                    height: int | None = None, depth: bool = False, fps: float | None = None) -> int:
        """A video along a camera path (a :class:`CameraPath` or a nerfstudio ``camera_path.json``),
        at the path's size and frame rate unless given."""
        path = read_camera_path(path) if not isinstance(path, CameraPath) else path
        return self.render_video(path.cameras(width, height), output, depth, fps or path.fps)


def renderable(run: Any, what: str) -> Renderable:
    """``run`` when it is :class:`Renderable`, else one error saying what it is and that ``what``
    needs a scene to render."""
    if not isinstance(run, Renderable):
        kind = getattr(getattr(run, "info", None), "kind", type(run).__name__)
        raise ValueError(f"{getattr(run, 'path', run)}: a {kind} run shows no scene; {what} needs a run that renders "
                         "cameras (reconstruction, generation, scene or gan)")
    return run


__all__ = ["CodeEditable", "LayoutEditable", "Refinable", "RenderTraits", "Renderable", "SourceViewed",
           "TimeConditioned", "VideoRenders", "renderable"]
