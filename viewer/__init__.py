"""Browser viewer of nerfgen runs, built on viser: ``nerfgen view RUN`` and ``nerfgen train --viewer``.

It uses nerfgen's public API only: :func:`nerfgen.engine.model.load_model` and
:meth:`RadianceModel.render_camera`, the run's training cameras, and the engine's camera paths.
"""

from viewer.scene import ViewerScene
from viewer.server import Viewer

__all__ = ["Viewer", "ViewerScene"]
