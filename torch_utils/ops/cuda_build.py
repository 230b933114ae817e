"""Lazy build, capability probe and fallback for the optional CUDA kernels of `torch_utils.ops`.

Every op has a pure-PyTorch reference path (the specification, used on CPU and as the fallback) and may have a
CUDA kernel. The kernel is compiled with ninja + nvcc through `torch.utils.cpp_extension.load` the first time
the op sees a CUDA tensor, into `<cache>/ops/<name>-<digest>` where the digest covers the sources, torch, the CUDA
version and the GPU architecture; later processes import the cached `.so` directly. The build runs in a private
temporary folder that is renamed into place when done, so an interrupted build never leaves a lock behind.

`STYLEINV_OPS` selects the path for CUDA tensors (CPU tensors always use the reference path, silently):
  auto (default)  use the kernel when it builds, loads and passes a numeric probe on this GPU; otherwise warn
                  once (cause and fix) and use the reference path.
  ref             always use the reference path; nothing is compiled.
  cuda            use the kernel; raise RuntimeError (cause and fix) if it cannot be built or loaded.

Per-process memo: `_build_once` is an `functools.lru_cache`; it holds the loaded module, or the reason it failed,
for each extension. A failed build is therefore never retried in the same process and is reported once.
"""

import dataclasses
import functools
import glob
import hashlib
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch

import dnnlib

OPS_ENV = "STYLEINV_OPS"
OPS_MODES = ("auto", "ref", "cuda")
STANDARD_CUDA_HOME = "/usr/local/cuda"


# The value of $STYLEINV_OPS, validated.
def ops_mode() -> str:
    mode = os.environ.get(OPS_ENV, "auto").strip().lower() or "auto"
    if mode not in OPS_MODES:
        raise ValueError(f"${OPS_ENV}={os.environ[OPS_ENV]!r} is not valid; use one of {', '.join(OPS_MODES)}.")
    return mode


# True when `root` looks like a CUDA toolkit root, i.e. it has lib64/, lib/ or targets/*/lib/ with libcudart.
def has_cudart(root: str | os.PathLike) -> bool:
    patterns = ["lib64/libcudart*", "lib/libcudart*", "targets/*/lib/libcudart*"]
    return any(glob.glob(os.path.join(glob.escape(str(root)), p)) for p in patterns)


# The CUDA toolkit root: explicit $CUDA_HOME/$CUDA_PATH, else the folder above the resolved nvcc when it holds
# libcudart, else the standard /usr/local/cuda link when it does. A wrapper script on PATH (e.g. /usr/local/bin/nvcc
# exec'ing the real one) is not followed by realpath, so its folder fails the libcudart check and the standard
# link is used instead. None when nothing is found.
def find_cuda_home(environ: dict | None = None, standard: str = STANDARD_CUDA_HOME) -> str | None:
    environ = os.environ if environ is None else environ
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var) and os.path.isdir(environ[var]):
            return environ[var]
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc is not None:
        root = os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))
        if has_cudart(root):
            return root
    if has_cudart(standard):
        return standard
    return None


# Library folder of a toolkit root holding libcudart (lib64 preferred).
def _cuda_lib_dir(cuda_home: str) -> str:
    for sub in ("lib64", "lib"):
        if glob.glob(os.path.join(glob.escape(cuda_home), sub, "libcudart*")):
            return os.path.join(cuda_home, sub)
    return os.path.join(cuda_home, "lib64")


# A missing build prerequisite; the message says what to install or set.
class BuildSetupError(RuntimeError):
    pass


# Compile `sources` with ninja/nvcc into `build_dir` and import the module. Raises on any failure.
# Sets $CUDA_HOME (only when unset) before torch.utils.cpp_extension is imported, since torch reads it at import;
# the toolkit's include/lib folders are also passed explicitly so a wrong guess by torch cannot break the link.
def compile_extension(name: str, sources: Sequence[str | os.PathLike], build_dir: str | os.PathLike,
                      verbose: bool = False) -> ModuleType:
    sources = [str(s) for s in sources]
    missing = [s for s in sources if not os.path.isfile(s)]
    if missing:
        raise BuildSetupError(f"CUDA op sources missing: {missing}; restore them from the repository")
    cuda_home = find_cuda_home()
    if cuda_home is None:
        raise BuildSetupError("no CUDA toolkit found (no nvcc with libcudart, $CUDA_HOME unset, no "
                              f"{STANDARD_CUDA_HOME}); install the CUDA toolkit {torch.version.cuda} with nvcc "
                              "and set CUDA_HOME to its root")
    if not os.environ.get("CUDA_HOME") and not os.environ.get("CUDA_PATH"):
        os.environ["CUDA_HOME"] = cuda_home
    from torch.utils import cpp_extension
    if not cpp_extension.is_ninja_available():
        raise BuildSetupError("ninja is not installed; install it with `pip install ninja`")
    if not cpp_extension.CUDA_HOME:
        raise BuildSetupError(f"torch found no CUDA toolkit; set CUDA_HOME={cuda_home} before starting Python")
    nvcc = os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")
    if not os.path.exists(nvcc) and not os.environ.get("PYTORCH_NVCC"):
        raise BuildSetupError(f"torch looks for nvcc at {nvcc}, which does not exist; set CUDA_HOME={cuda_home} "
                              "before starting Python")
    os.makedirs(build_dir, exist_ok=True)
    return cpp_extension.load(
        name=name, sources=sources, build_directory=str(build_dir), verbose=verbose, with_cuda=True,
        extra_cflags=["-O3"], extra_cuda_cflags=["-O3"],
        extra_include_paths=[os.path.join(cuda_home, "include")],
        extra_ldflags=[f"-L{_cuda_lib_dir(cuda_home)}"],
    )


# Folder for a cached build: <cache>/ops/<name>-<digest of sources, torch, CUDA, Python ABI, GPU arch>.
def cached_build_dir(name: str, sources: Sequence[str | os.PathLike], arch: str) -> Path:
    digest = hashlib.sha256()
    for s in sorted(sources):
        digest.update(Path(s).name.encode() + b"\0" + Path(s).read_bytes() + b"\0")
    for item in (torch.__version__, torch.version.cuda, sysconfig.get_config_var("EXT_SUFFIX"), arch,
                 os.environ.get("TORCH_CUDA_ARCH_LIST", "")):
        digest.update(f"{item}\0".encode())
    root = Path(os.environ["TORCH_EXTENSIONS_DIR"]) if os.environ.get("TORCH_EXTENSIONS_DIR") else \
        dnnlib.cache_dirs()[0] / "ops"
    return root / f"{name}-{digest.hexdigest()[:16]}"


# Import a compiled extension module from its .so file (used for cached builds).
def _import_library(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Load the cached build of `name`, or build it in a private temp folder and rename that into place.
def _load_or_build(name: str, sources: tuple[str, ...], depends: tuple[str, ...]) -> ModuleType:
    missing = [s for s in sources + depends if not os.path.isfile(s)]
    if missing:
        raise BuildSetupError(f"CUDA op sources missing: {missing}; restore them from the repository")
    major, minor = torch.cuda.get_device_capability()
    final = cached_build_dir(name, sources + depends, f"sm_{major}{minor}")
    suffix = ".pyd" if sys.platform == "win32" else ".so"
    built = final / f"{name}{suffix}"
    if built.is_file():
        return _import_library(name, str(built))
    final.parent.mkdir(parents=True, exist_ok=True)
    print(f"styleinv: compiling CUDA op '{name}' into {final} (first use only, about a minute)...",
          file=sys.stderr, flush=True)
    tmp = tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=final.parent)
    try:
        module = compile_extension(name, sources, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.replace(tmp, final)
    except OSError:  # another process finished the same build first; keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return module


# Outcome of one build attempt: the module, or the reason (cause and fix) it is unusable.
@dataclasses.dataclass
class BuildResult:
    module: ModuleType | None
    error: str | None
    reported: bool = False


# Build/load once per process and run the op's numeric probe on the current GPU (the capability check).
@functools.lru_cache(maxsize=None)
def _build_once(name: str, sources: tuple[str, ...], depends: tuple[str, ...],
                probe: Callable[[ModuleType], None] | None) -> BuildResult:
    try:
        module = _load_or_build(name, sources, depends)
    except Exception as e:  # noqa: BLE001 - any build failure means "fall back"
        return BuildResult(None, _explain_build_failure(name, e))
    if probe is not None:
        try:
            probe(module)
        except Exception as e:  # noqa: BLE001
            return BuildResult(None, f"CUDA op '{name}' built but failed its check on this GPU "
                                     f"({type(e).__name__}: {_tail(str(e), 5)}). Fix: make sure the CUDA toolkit "
                                     f"supports this GPU, or set TORCH_CUDA_ARCH_LIST to its architecture.")
    return BuildResult(module, None)


# The message for a failed build: the cause (compiler error lines, or the missing prerequisite) and the fix.
def _explain_build_failure(name: str, e: Exception) -> str:
    if isinstance(e, BuildSetupError):
        return f"CUDA op '{name}' could not be built: {e}."
    lines = str(e).strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()][:8]
    cause = "\n".join(errors) if errors else _tail(str(e), 15)
    fix = (f"check that nvcc matches torch's CUDA version ({torch.version.cuda}) and that a supported host "
           "compiler (gcc/g++) is installed")
    return f"CUDA op '{name}' could not be built: {type(e).__name__}: {cause}\nFix: {fix}."


# The last `lines` lines of a (compiler) message.
def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# The compiled module for CUDA tensors, or None to use the reference path (see the module docstring).
# `sources` are compiled (.cpp, .cu); `depends` (headers) only enter the digest of the cached build folder.
def load_extension(name: str, sources: Sequence[str | os.PathLike], depends: Sequence[str | os.PathLike] = (),
                   probe: Callable[[ModuleType], None] | None = None) -> ModuleType | None:
    mode = ops_mode()
    if mode == "ref":
        return None
    result = _build_once(name, tuple(str(s) for s in sources), tuple(str(d) for d in depends), probe)
    if result.error is None:
        return result.module
    if mode == "cuda":
        raise RuntimeError(f"{result.error}\n(${OPS_ENV}=cuda; unset it to fall back to the reference path.)")
    if not result.reported:
        result.reported = True
        warnings.warn(f"{result.error}\nFalling back to the pure-PyTorch reference path (same results, slower). "
                      f"Set {OPS_ENV}=ref to skip the CUDA build.", RuntimeWarning, stacklevel=3)
    return None
