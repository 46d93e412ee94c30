"""Browser viewer of nerfgen runs, built on viser: ``nerfgen view RUN``, ``nerfgen train --viewer``
and ``nerfgen generate --viewer``.

It uses nerfgen's public API only (``import nerfgen``): :func:`nerfgen.load_run` and
:meth:`nerfgen.Run.render`, the run's :class:`nerfgen.Orbit`, its training cameras
(:func:`nerfgen.load_dataset`) and camera paths (:class:`nerfgen.CameraPath`). A GAN run (GRAF or
GIRAFFE) shows the scene its codes describe, with an objects panel that edits them
(:mod:`nerfgen.viewer.objects_panel`); a generated scene of several objects (``nerfgen generate
--scene``) gets a panel that moves, turns, scales and hides them (:mod:`nerfgen.viewer.layout_panel`).
"""

from nerfgen.viewer.scene import ViewerScene
from nerfgen.viewer.server import Viewer

__all__ = ["Viewer", "ViewerScene"]
