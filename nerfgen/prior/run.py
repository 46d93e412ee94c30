"""Prior run directories (kind ``prior``): ``run.json`` (the :class:`PriorRunInfo`) beside the
built-in prior's weights (``model.safetensors`` + ``model.json``, and ``model.guide.*`` once the
guidance model is trained), opened as a :class:`PriorRun` that samples images of a prompt.

A prior run shows no scene (it is not :class:`~nerfgen.renderable.Renderable`): it is a model
that ``nerfgen generate --model RUN`` and ``nerfgen prior sample --model RUN`` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from nerfgen.config import config_to_dict, stored_config
from nerfgen.kinds import RunKind, described_by
from nerfgen.prior.train_config import PriorTrainConfig

FORMAT = 1
DATA = "procedural object library"
"""What every prior run trains on (rendered by nerfgen itself; see ``views`` in the config)."""


@dataclass
class PriorRunInfo:
    """What a prior run directory says about its run besides the weights.

    Attributes:
        config: the run's config.
        data: what it trained on.
    """

    config: PriorTrainConfig
    data: str = DATA
    kind: RunKind = RunKind.PRIOR

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": RunKind.PRIOR.value, "data": self.data, "config": config_to_dict(self.config)}

    @classmethod
    def from_dict(cls, d: dict, source: str) -> PriorRunInfo:
        if d.get("format") != FORMAT or d.get("kind") != RunKind.PRIOR.value:
            raise ValueError(f"{source}: not a prior run (format {d.get('format')!r}, kind {d.get('kind')!r})")
        try:
            return cls(stored_config(PriorTrainConfig, d["config"], f"{source}: config"), str(d.get("data", DATA)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: missing or malformed entry {exc}; not a nerfgen prior run directory") from exc


class PriorRun:
    """A trained built-in prior: what :func:`nerfgen.load_run` gives for a run of kind ``prior``.

    Attributes:
        info: the :class:`PriorRunInfo`.
        prior: the :class:`~nerfgen.prior.builtin.BuiltinPrior` (EMA weights, and the guidance
            model when it has been trained).
        path: the run directory.

    >>> run = nerfgen.load_run("runs/prior")                           # doctest: +SKIP
    >>> images = run.sample("a red cube", views=4)                     # [4, 3, R, R] in [0, 1]
    """

    def __init__(self, info: PriorRunInfo, prior, path: str | Path) -> None:
        self.info, self.prior, self.path = info, prior, Path(path)

    def sample(self, prompt: str, views: int = 8, elevation: float = 15.0, guidance: float = 5.0, steps: int = 50,
               seed: int = 0) -> Tensor:
        """``[views, 3, R, R]`` DDIM samples of ``prompt`` from ``views`` azimuths, in [0, 1]."""
        import torch

        from nerfgen.cameras import orbit_views
        from nerfgen.prior.builtin import VIEW_DISTANCE, ddim_sample

        generator = torch.Generator().manual_seed(seed)
        cameras = orbit_views(views, elevation, VIEW_DISTANCE)
        return ddim_sample(self.prior, self.prior.encode_prompt(prompt), cameras, guidance, steps, generator)


def open_prior_run(run_dir: str | Path, info: PriorRunInfo, device: str) -> PriorRun:
    """Open the prior run in ``run_dir`` (described by ``info``) on ``device``."""
    from nerfgen.prior.builtin import load_builtin_prior

    with described_by(run_dir):
        prior = load_builtin_prior(Path(run_dir), device)
    return PriorRun(info, prior, run_dir)


__all__ = ["PriorRun", "PriorRunInfo", "open_prior_run"]
