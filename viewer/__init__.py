"""Browser viewer of nerfgen runs, built on viser: ``nerfgen view RUN``, ``nerfgen train --viewer``
and ``nerfgen generate --viewer``.

It uses nerfgen's public API only (``import nerfgen``): :func:`nerfgen.load_run` and
:meth:`nerfgen.Run.render`, the run's :class:`nerfgen.Orbit`, its training cameras
(:func:`nerfgen.load_dataset`) and camera paths (:class:`nerfgen.CameraPath`).
"""

from nerfgen.viewer.scene import ViewerScene
from nerfgen.viewer.server import Viewer

__all__ = ["Viewer", "ViewerScene"]
