"""What every training run shares: budgets, seeds, threads, device, checkpoint and log intervals.

Each kind of run's config (reconstruction, generation, prior) extends :class:`EngineConfig`, so
these keys sit at the top level of every YAML config.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfgen.config import check_device


@dataclass
class EngineConfig:
    """Settings the training engine (:class:`nerfgen.engine.Engine`) owns."""

    max_steps: int = 20000
    """Stop after this many optimisation steps."""
    max_seconds: float = 0.0
    """Stop after this much training time (0: no limit); learning-rate schedules follow whichever
    budget is nearer."""
    grad_clip: float = 0.0
    """Clip each optimiser's gradients to this global norm (0: no clipping)."""
    checkpoint_every: int = 2000
    """Steps between checkpoints (one is always written at the end; 0: by time only)."""
    checkpoint_seconds: float = 60.0
    """Training seconds between checkpoints, whichever of this and ``checkpoint_every`` comes
    first: a run killed at any moment loses at most about this much work (0: by steps only)."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept in ``checkpoints/`` (the newest; at least 1)."""
    eval_every: int = 1000
    """Steps between the run's periodic evaluation (validation PSNR, a preview sheet; 0: never)."""
    log_every: int = 25
    """Steps between tensorboard scalars."""
    seed: int = 0
    """Seed of every random choice; a run is repeatable for a seed, resumed or not."""
    threads: int = 0
    """CPU threads for torch (0: all cores, split evenly between the ranks on one node)."""
    device: str = "auto"
    """Where the run trains: ``cpu``, ``cuda[:n]`` or ``auto`` (CUDA when torch sees a GPU)."""

    def validate(self, source: str) -> None:
        check_device(self.device, source)
        if self.max_steps <= 0 and self.max_seconds <= 0:
            raise ValueError(f"{source}: max_steps or max_seconds must be positive")
        for key in ("max_seconds", "grad_clip", "checkpoint_every", "checkpoint_seconds", "eval_every", "threads"):
            if getattr(self, key) < 0:
                raise ValueError(f"{source}: {key}: expected a value >= 0, got {getattr(self, key)}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"{source}: keep_checkpoints: expected a value >= 1, got {self.keep_checkpoints}")
        if self.log_every < 1:
            raise ValueError(f"{source}: log_every: expected a value >= 1, got {self.log_every}")


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; other names pass through, and a
    CUDA device torch cannot see is an error that says so. In a ``torchrun`` job of several ranks
    ``auto`` and ``cuda`` mean this rank's own GPU, ``cuda:{LOCAL_RANK}`` (modulo the GPUs there are)."""
    import torch

    from nerfgen import distributed

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: torch {torch.__version__} sees no CUDA GPU here; use --device cpu or auto")
    world = distributed.env_world()
    if name == "cuda" and world.parallel:
        return f"cuda:{world.local_rank % torch.cuda.device_count()}"
    return name
