"""Errors and warnings raised while loading datasets."""

from __future__ import annotations

__all__ = ["DatasetError", "DatasetWarning"]


class DatasetError(ValueError):
    """A dataset on disk is missing, malformed or inconsistent.

    The message always names the offending file and says what was expected,
    e.g. ``".../transforms_train.json: frame 3 'transform_matrix' must be 4x4, got 3x3"``.
    """


class DatasetWarning(UserWarning):
    """Something about a dataset worth knowing (skipped frames, implicit splits)."""
