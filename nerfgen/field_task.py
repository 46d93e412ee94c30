"""A training task whose product is a radiance-field run directory (:class:`FieldTask`): what
reconstruction, generation and scene generation share."""

from __future__ import annotations

from pathlib import Path

from nerfgen.engine.task import Task
from nerfgen.render import RadianceModel
from nerfgen.runs import Run, RunInfo, load_model_tensors, write_run


class FieldTask(Task):
    """A task whose product is a run directory of a :class:`RadianceModel` (``self.model``), as
    :meth:`info` describes it: saved into each checkpoint, loaded to resume, and shown live as a
    :class:`~nerfgen.runs.Run`."""

    model: RadianceModel

    def info(self) -> RunInfo:
        """What the run directory says about this run."""
        raise NotImplementedError

    def live_run(self, output: str | Path) -> Run:
        """The model being trained, as a :class:`Run` (what the viewer shows live)."""
        return Run(self.info(), self.model, output)

    def save(self, output: Path, step: int, seconds: float) -> None:
        write_run(output, self.info(), self.model)

    def load(self, output: Path) -> None:
        load_model_tensors(self.model, output)
