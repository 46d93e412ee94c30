"""Lazy loading of nerfgen's compiled kernels (``cuda/`` at the repository root).

Importing nerfgen never compiles anything. The first op that could use a kernel calls
:func:`backend_available`, which loads the ``nerfgen`` torch library (``torch.ops.nerfgen.*``):
from the cache when it was built before (~0.1 s), else by a JIT build with
``torch.utils.cpp_extension.load`` (~20 s, announced on stderr). Where that fails, one warning
says why and the ops run their pure-torch twins.

The backend is chosen by ``NERFGEN_BACKEND`` (read once, at first use):

* ``auto`` (default): the kernels when they build, else the torch twins.
* ``cpp``: the kernels or an error carrying the compiler's output.
* ``torch``: never build; the torch twins run.

Builds are cached under ``$NERFGEN_CACHE`` (default ``~/.cache/nerfgen``) in
``ext-<hash>``, the hash covering the sources, the flags, torch, Python and the CPU: the CPU
build uses ``-march=native``, so a cache entry is only valid on the machine kind that built it
(a shared home directory across different CPUs gets one entry per CPU model).

CUDA: when torch sees a GPU and ``CUDA_HOME`` is set, the same library is built with
``cuda/src/*.cu`` and ``-DNERFGEN_WITH_CUDA`` (registering CUDA implementations of the ops);
if that build fails, a warning is given and the CPU-only library is built instead.

>>> from nerfgen.ops import _backend
>>> _backend.get_backend_name() in ("cpp", "cuda", "torch")
True
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"
"""Kernel sources: ``include/nerfgen/*.h`` and ``src/``."""

_CPU_SOURCES = ("bindings.cpp", "bindings_hashgrid.cpp", "bindings_march.cpp", "bindings_volrend.cpp",
                "bindings_planes.cpp", "bindings_baked.cpp", "bindings_mlp.cpp", "hashgrid_cpu.cpp", "march_cpu.cpp",
                "planes_cpu.cpp", "volrend_cpu.cpp", "baked_cpu.cpp", "mlp_cpu.cpp")
_CUDA_SOURCES = ("hashgrid.cu", "march.cu", "planes.cu", "volrend.cu", "baked.cu")
# -ffp-contract=off: no fused multiply-adds, so frac = x N_l - floor(x N_l) rounds as in the torch
# twin. -march=native: ~5% faster on the dev CPU; the CPU is part of the cache key (see above).
# The C++ standard is left to torch (C++20 for torch 2.13); the kernel sources are C++17-clean.
_CFLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-march=native"]
_LDFLAGS = ["-fopenmp"]
# --fmad=false: the same no-FMA rule on the GPU, so marching keeps the twin's float32 samples exactly.
_CUDA_CFLAGS = ["-O3", "--fmad=false", "-DNERFGEN_WITH_CUDA"]
_MODES = ("auto", "cpp", "torch")


@dataclass(frozen=True)
class _State:
    """Outcome of the one load attempt of this process."""

    name: str  # "cpp" (CPU kernels), "cuda" (CPU and CUDA kernels) or "torch" (twins only)
    mode: str  # NERFGEN_BACKEND at the time of the attempt
    error: str | None = None  # why the kernels are not loaded, if they are not


_lock = threading.Lock()
_state: _State | None = None


def backend_mode() -> str:
    """The requested backend, ``NERFGEN_BACKEND`` in ``auto | cpp | torch`` (default ``auto``)."""
    mode = os.environ.get("NERFGEN_BACKEND", "auto").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"NERFGEN_BACKEND must be one of {_MODES}, got {mode!r}")
    return mode


def backend_available(device: str | torch.device = "cpu") -> bool:
    """Whether the compiled kernels serve tensors on ``device`` (loads or builds them on first call).

    Raises:
        RuntimeError: ``NERFGEN_BACKEND=cpp`` and the kernels could not be built or loaded.
    """
    state = _load()
    kind = torch.device(device).type
    if kind == "cpu":
        return state.name in ("cpp", "cuda")
    return kind == "cuda" and state.name == "cuda"


def kernels_serve(*tensors: torch.Tensor, dtypes: tuple[torch.dtype, ...] = (torch.float32,)) -> bool:
    """Whether the compiled kernels take ``tensors``: each of a dtype in ``dtypes``, all on one
    device that the kernels serve (checked first without loading anything)."""
    if any(t.dtype not in dtypes for t in tensors) or len({t.device for t in tensors}) > 1:
        return False
    return backend_available(tensors[0].device)


def get_backend_name() -> str:
    """``"cuda"`` (CPU + CUDA kernels), ``"cpp"`` (CPU kernels) or ``"torch"`` (twins only)."""
    return _load().name


def backend_error() -> str | None:
    """Why the kernels are not loaded (the compiler's output, say), or ``None``."""
    try:
        return _load().error
    except RuntimeError as exc:  # NERFGEN_BACKEND=cpp raises with the same text
        return str(exc)


def _load() -> _State:
    global _state
    state = _state
    if state is None:
        with _lock:
            if _state is None:
                _state = _register(_try_load())
            state = _state
    if state.error is not None and state.mode == "cpp":
        raise RuntimeError(f"NERFGEN_BACKEND=cpp but nerfgen's kernels are unavailable:\n{state.error}")
    return state


def _register(state: _State) -> _State:
    """Registers the ops' Python parts; without them (autograd!) the kernels must not be used."""
    if state.error is not None or state.name == "torch":
        return state
    try:
        from nerfgen.ops import _kernels

        _kernels.register()
    except Exception as exc:  # noqa: BLE001
        if state.mode == "auto":
            warnings.warn(f"nerfgen: registering the kernels failed, using the torch twins: {exc!r}",
                          RuntimeWarning, stacklevel=4)
        return _State("torch", state.mode, f"registering the ops' Python parts failed: {exc!r}")
    return state


def _try_load() -> _State:
    mode = backend_mode()
    if mode == "torch":
        return _State("torch", mode)
    if _want_cuda():
        try:
            _load_library(with_cuda=True)
            return _State("cuda", mode)
        except Exception as exc:  # noqa: BLE001 -- any build failure falls back to the CPU build
            warnings.warn(f"nerfgen: the CUDA kernels did not build, CUDA tensors use the torch twins: "
                          f"{_short(exc)}", RuntimeWarning, stacklevel=3)
    try:
        _load_library(with_cuda=False)
    except Exception as exc:  # noqa: BLE001 -- compiler errors come as RuntimeError, OSError, ...
        error = f"{type(exc).__name__}: {exc}"
        if mode == "auto":
            warnings.warn(f"nerfgen: the C++ kernels are unavailable, using the (slower) torch twins: "
                          f"{_short(exc)}", RuntimeWarning, stacklevel=3)
        return _State("torch", mode, error)
    return _State("cpp", mode)


def _want_cuda() -> bool:
    from torch.utils import cpp_extension

    return torch.version.cuda is not None and torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None


def _short(exc: BaseException, n_lines: int = 12) -> str:
    """The last lines of an error (compiler output can be long)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return "\n".join(lines[-n_lines:])


def _cpu_fingerprint() -> str:
    """CPU model and instruction-set flags: what ``-march=native`` depends on."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(keep))) or platform.machine()


def _cache_dir(name: str, sources: list[Path], flags: list[str]) -> Path:
    digest = hashlib.sha256()
    headers = sorted((CUDA_DIR / "include").rglob("*.h")) + sorted((CUDA_DIR / "src").glob("*.h"))
    for path in [*sources, *headers]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    for part in (name, *flags, torch.__version__, str(torch.version.cuda), sys.version, _cpu_fingerprint()):
        digest.update(part.encode() + b"\0")
    root = Path(os.environ.get("NERFGEN_CACHE") or Path.home() / ".cache" / "nerfgen")
    return root / f"ext-{digest.hexdigest()[:16]}"


def _load_library(with_cuda: bool) -> None:
    """Load the ``nerfgen`` torch library from the cache, building it there if needed."""
    from torch.utils import cpp_extension

    name = "nerfgen_cuda" if with_cuda else "nerfgen_cpu"
    sources = [CUDA_DIR / "src" / s for s in _CPU_SOURCES + (_CUDA_SOURCES if with_cuda else ())]
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"kernel sources not found (nerfgen installed without cuda/?): {missing}")
    cflags = _CFLAGS + (["-DNERFGEN_WITH_CUDA"] if with_cuda else [])
    cuda_cflags = _CUDA_CFLAGS if with_cuda else []
    build_dir = _cache_dir(name, sources, cflags + cuda_cflags)
    library = build_dir / f"{name}.so"
    if library.is_file():
        try:
            torch.ops.load_library(str(library))
            return
        except OSError as exc:
            raise OSError(f"{exc}\n(delete {build_dir} to rebuild)") from exc
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler: {compiler!r} is not on PATH (set CXX or install g++)")
    build_dir.mkdir(parents=True, exist_ok=True)
    what = "CPU and CUDA kernels (first use, a few minutes)" if with_cuda else "CPU kernels (first use, ~20 s)"
    print(f"nerfgen: building the {what}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    cpp_extension.load(
        name=name,
        sources=[str(s) for s in sources],
        extra_include_paths=[str(CUDA_DIR / "include")],
        extra_cflags=cflags,
        extra_cuda_cflags=cuda_cflags,
        extra_ldflags=_LDFLAGS,
        build_directory=str(build_dir),
        is_python_module=False,
        verbose=False,
    )
    print(f"nerfgen: built the kernels in {time.perf_counter() - start:.1f} s ({build_dir})",
          file=sys.stderr, flush=True)
