"""The training engine every kind of run shares (:class:`Engine`) and what a run gives it (:class:`Task`)."""

from nerfgen.engine.config import EngineConfig, resolve_device
from nerfgen.engine.loop import Engine, Hook, StepReport, Summary
from nerfgen.engine.task import Env, Figure, Schedule, StepContext, StepResult, Task

__all__ = ["Engine", "EngineConfig", "Env", "Figure", "Hook", "Schedule", "StepContext", "StepReport", "StepResult",
           "Summary", "Task", "resolve_device"]
