"""Generalizable radiance fields: novel views of a scene never trained on, from one to a few of its
posed photos (pixelNeRF / GRF with IBRNet-style pooling options, MVSNeRF's pretrained network),
and per-scene fine-tuning from such a model.

* :mod:`~nerfgen.generalize.sources`: source views (any capture's views) and their encoded features;
* :mod:`~nerfgen.generalize.projection`: points into source views, features read there;
* :mod:`~nerfgen.generalize.pixelnerf`, :mod:`~nerfgen.generalize.mvsnerf`: the models;
* :mod:`~nerfgen.generalize.data`, :mod:`~nerfgen.generalize.task`: training scenes, the task;
* :mod:`~nerfgen.generalize.run`, :mod:`~nerfgen.generalize.api`: run directories (kind ``generalizable``).

Public names load through :mod:`nerfgen` (``nerfgen.train_generalizable``, ``nerfgen.SourceViews``,
...); importing this package loads nothing (the command line stays quick to start).
"""
