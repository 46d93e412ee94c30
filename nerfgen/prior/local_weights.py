"""Find a diffusers pipeline on this machine: a folder, or a Hugging Face cache entry.

Nothing is ever downloaded: a missing model is one error that says where to put it.
"""

from __future__ import annotations

from pathlib import Path

PIPELINE_INDEX = "model_index.json"


def _missing_weights(repo_id: str, what: str, cache: str) -> FileNotFoundError:
    folder = f"{cache}/models--{repo_id.replace('/', '--')}"
    return FileNotFoundError(
        f"{what} weights {repo_id!r} are not on this machine (nerfgen never downloads at run time). "
        f"Put them in the Hugging Face cache ({folder}; on a machine with network: `hf download {repo_id}`, "
        f"then copy that folder here, or set HF_HOME to where it lies), or pass --model DIR, a diffusers "
        f"pipeline folder ({PIPELINE_INDEX}, unet/, vae/ or the like, text_encoder/, tokenizer/, scheduler/) "
        f"as written by `pipeline.save_pretrained(DIR)`."
    )


def _looks_like_path(model: str) -> bool:
    """A hub id is ``owner/name``; anything else with a separator or a leading dot/tilde is a path."""
    return model.startswith((".", "~", "/")) or model.count("/") != 1 or "\\" in model


def resolve_pipeline(model: str | Path | None, default_repo: str, what: str) -> Path:
    """The local folder of a diffusers pipeline.

    Args:
        model: a pipeline folder, a Hugging Face repo id found in the local cache, or None for
            ``default_repo``.
        default_repo: repo id used when ``model`` is None.
        what: the model family, for error messages ("Stable Diffusion").

    Returns:
        A folder holding ``model_index.json``.

    Raises:
        FileNotFoundError: the folder or the cache entry is missing, or holds no pipeline.
    """
    model = str(model) if model is not None else default_repo
    path = Path(model).expanduser()
    if path.exists() or _looks_like_path(model):
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no {what} pipeline folder here (expected a folder with {PIPELINE_INDEX})")
        if not (path / PIPELINE_INDEX).is_file():
            raise FileNotFoundError(f"{path}: not a diffusers pipeline folder (expected {PIPELINE_INDEX} in it)")
        return path
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise _missing_weights(model, what, constants.HF_HUB_CACHE) from exc
    if not (folder / PIPELINE_INDEX).is_file():
        raise _missing_weights(model, what, constants.HF_HUB_CACHE)
    return folder


def import_diffusers():
    """The ``diffusers`` module, or an error naming the extra that installs it."""
    try:
        import diffusers
    except ImportError as exc:
        raise ImportError(
            "the stable-diffusion and deepfloyd-if priors need diffusers and transformers: "
            "pip install 'nerfgen[generate]'"
        ) from exc
    return diffusers
