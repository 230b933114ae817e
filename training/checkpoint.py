"""Checkpoints: our torch.save format (class + init_kwargs + state dict per network, plus training state) and a
code-free reader for official stylegan2-ada-pytorch `.pkl` snapshots (STYLEGAN2.md 1.5-1.7)."""

import collections
import importlib
import inspect
import io
import os
import pickle
import tempfile
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

# store_init_kwargs is re-exported so that `training.checkpoint.store_init_kwargs` keeps working.
from training import networks_stylegan2
from training.plain_data import plain_data, store_init_kwargs  # noqa: F401

FORMAT = "styleinv-checkpoint"
FORMAT_VERSION = 1
# Networks are rebuilt only from classes defined in these packages of this project.
ALLOWED_CLASS_PREFIXES = ("training.", "metrics.")

# ----------------------------------------------------------------------------------------------------------
# Our format.


# Dotted name "module.QualName" of a module's class, checked against ALLOWED_CLASS_PREFIXES.
def _class_path(module: torch.nn.Module, name: str) -> str:
    cls = type(module)
    path = f"{cls.__module__}.{cls.__qualname__}"
    if not cls.__module__.startswith(ALLOWED_CLASS_PREFIXES) or "<locals>" in cls.__qualname__:
        raise TypeError(f"network '{name}': class {path} is not a top-level class of this project's packages "
                        f"{ALLOWED_CLASS_PREFIXES}, so it could not be rebuilt on load")
    return path


# CRC32 over every tensor (dtype, shape, bytes) in a nested structure, in traversal order; detects corrupt data.
def _tensor_crc32(value: Any, crc: int = 0) -> int:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous().reshape(-1)
        crc = zlib.crc32(f"{t.dtype}{tuple(value.shape)}".encode(), crc)
        return zlib.crc32(t.view(torch.uint8).numpy(), crc) if t.numel() else crc
    if isinstance(value, dict):
        for v in value.values():
            crc = _tensor_crc32(v, crc)
    elif isinstance(value, (list, tuple)):
        for v in value:
            crc = _tensor_crc32(v, crc)
    return crc


# The process umask (read without changing it for longer than a call).
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Write `networks` (each as class path, init_kwargs and CPU state dict), optional `training_state` (optimizer
# states, counters, RNG states, ...: tensors and plain data, numpy converted) and `metadata` to `path`, atomically
# (temporary file in the same folder, then os.replace).
def save_checkpoint(path: str | os.PathLike, networks: dict[str, torch.nn.Module], training_state: dict | None = None,
                    metadata: dict | None = None) -> None:
    stored = {}
    for name, net in networks.items():
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"save_checkpoint: network '{name}' is a {type(net).__name__}, not a torch.nn.Module")
        init_kwargs = getattr(net, "init_kwargs", None)
        if not isinstance(init_kwargs, dict):
            raise TypeError(f"save_checkpoint: network '{name}' ({type(net).__name__}) has no init_kwargs dict; "
                            "decorate its __init__ with training.plain_data.store_init_kwargs")
        stored[name] = dict(
            class_path=_class_path(net, name),
            init_kwargs=plain_data(init_kwargs, f"network '{name}' init_kwargs", json_only=True),
            state_dict={k: v.detach().cpu() for k, v in net.state_dict().items()},
        )
    content = dict(format=FORMAT, format_version=FORMAT_VERSION, networks=stored,
                   training_state=plain_data(training_state, "training_state"),
                   metadata=plain_data(metadata or {}, "metadata"))
    content["tensor_crc32"] = _tensor_crc32([content["networks"], content["training_state"], content["metadata"]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(content, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; snapshots get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# True if the file starts like a plain pickle (protocol 2+) rather than a torch.save zip archive.
def _is_plain_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


# Raw content of one of our checkpoints (read with weights_only=True, tensors on CPU). Raises FileNotFoundError
# or ValueError naming the file when it is missing, truncated, corrupted or not in our format.
def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist")
    if _is_plain_pickle(path):
        raise ValueError(f"'{path}' is a plain pickle (e.g. an official stylegan2-ada-pytorch snapshot), not a "
                         "styleinv checkpoint; read it with training.checkpoint.load_networks")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"'{path}' is not a styleinv checkpoint: it holds objects that a weights-only load "
                         f"refuses ({first})") from None
    except Exception as e:  # Truncated/corrupted archives raise RuntimeError, EOFError, zipfile errors, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"Checkpoint '{path}' is truncated or corrupted and cannot be read ({first})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(f"'{path}' is a torch file but not a styleinv checkpoint (no format='{FORMAT}' entry)")
    if content.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"Checkpoint '{path}' has format version {content.get('format_version')!r}; this code "
                         f"reads version {FORMAT_VERSION}")
    crc = _tensor_crc32([content.get("networks"), content.get("training_state"), content.get("metadata")])
    if crc != content.get("tensor_crc32"):
        raise ValueError(f"Checkpoint '{path}' is corrupted: its tensor data fails the CRC32 check")
    return content


# Import the class named by a stored dotted path, only from this project's packages, only nn.Module subclasses.
def _resolve_class(class_path: str, path: Path) -> type:
    module_name, _, qualname = class_path.rpartition(".")
    if not class_path.startswith(ALLOWED_CLASS_PREFIXES) or not module_name or "<" in class_path:
        raise ValueError(f"Checkpoint '{path}': class '{class_path}' is outside this project's packages "
                         f"{ALLOWED_CLASS_PREFIXES}; refusing to build it")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"Checkpoint '{path}': cannot import the module of class '{class_path}' ({e})") from None
    cls = getattr(module, qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"Checkpoint '{path}': '{class_path}' is not a torch.nn.Module class of this project")
    return cls


# Build `cls(**init_kwargs)` and load `state_dict` strictly; a mismatch is a ValueError naming file and network.
def _build_network(cls: type, init_kwargs: dict, state_dict: dict, what: str) -> torch.nn.Module:
    try:
        net = cls(**init_kwargs)
    except TypeError as e:
        raise ValueError(f"{what}: cannot build {cls.__name__} from the stored arguments ({e})") from None
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise ValueError(f"{what}: stored tensors do not fit {cls.__name__} ({detail[:500]})") from None
    return net


# Networks of a checkpoint, ours or an official stylegan2-ada-pytorch .pkl (G, D, G_ema), rebuilt as this project's
# classes, in eval mode with requires_grad False, on `device`. `names` selects networks (default: all that can be
# built; an official pickle's augment_pipe is skipped, see read_official_pickle for it).
def load_networks(path: str | os.PathLike, device: torch.device | str = "cpu",
                  names: list[str] | None = None) -> dict[str, torch.nn.Module]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist")
    if _is_plain_pickle(path):
        nets = _official_networks(path, names)
    else:
        stored = load_checkpoint(path)["networks"]
        missing = [n for n in (names or []) if n not in stored]
        if missing:
            raise KeyError(f"Checkpoint '{path}' has no network(s) {missing}; it holds {list(stored)}")
        nets = {}
        for name in names if names is not None else list(stored):
            entry = stored[name]
            cls = _resolve_class(entry["class_path"], path)
            nets[name] = _build_network(cls, entry["init_kwargs"], entry["state_dict"],
                                        f"Checkpoint '{path}', network '{name}'")
    return {name: net.eval().requires_grad_(False).to(device) for name, net in nets.items()}


# The training state stored by save_checkpoint (None if the file has none, e.g. an official pickle).
def load_training_state(path: str | os.PathLike) -> dict | None:
    path = Path(path)
    if path.is_file() and _is_plain_pickle(path):
        return None
    return load_checkpoint(path).get("training_state")


# Copy every parameter and buffer of `src` into the same-named one of `dst` (no autograd). Names missing from src
# are skipped unless require_all; a shape mismatch is a ValueError naming the tensor.
def copy_params_and_buffers(src: torch.nn.Module, dst: torch.nn.Module, require_all: bool = False) -> None:
    src_tensors = {**dict(src.named_parameters()), **dict(src.named_buffers())}
    with torch.no_grad():
        for name, tensor in [*dst.named_parameters(), *dst.named_buffers()]:
            if name not in src_tensors:
                if require_all:
                    raise KeyError(f"copy_params_and_buffers: source has no tensor '{name}'")
                continue
            value = src_tensors[name]
            if value.shape != tensor.shape:
                raise ValueError(f"copy_params_and_buffers: '{name}' has shape {tuple(value.shape)} in the source "
                                 f"and {tuple(tensor.shape)} in the destination")
            tensor.copy_(value.detach())


# ----------------------------------------------------------------------------------------------------------
# Official stylegan2-ada-pytorch pickles (STYLEGAN2.md 1.5, 1.6): an allow-list unpickler; no NVIDIA code is
# imported, the embedded module_src is never executed or kept.


# Raised for content the official-pickle reader refuses (a global outside the allow-list, a malformed record).
class _Refused(pickle.UnpicklingError):
    pass


# One persistent-class object of an official pickle, as plain data: its class name and its nn.Module __dict__.
class PickledModule:
    def __init__(self, class_name: str, state: dict):
        self.class_name = class_name
        self.state = state

    # Constructor arguments as recorded by the pickle: (positional args tuple, keyword dict), as plain data.
    @property
    def init_args(self) -> tuple:
        return tuple(_plain_pickled(self.state.get("_init_args", ()), f"{self.class_name} init args"))

    @property
    def init_kwargs(self) -> dict:
        return _plain_pickled(self.state.get("_init_kwargs", {}), f"{self.class_name} init kwargs")

    # Child records by attribute name.
    @property
    def submodules(self) -> dict[str, "PickledModule"]:
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if v is not None}

    # Flattened parameters and persistent buffers with the same dotted names and order as nn.Module.state_dict().
    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        out = {}
        for k, v in (self.state.get("_parameters") or {}).items():
            if v is not None:
                out[prefix + k] = v.detach()
        skip = self.state.get("_non_persistent_buffers_set") or set()
        for k, v in (self.state.get("_buffers") or {}).items():
            if v is not None and k not in skip:
                out[prefix + k] = v.detach()
        for k, child in self.submodules.items():
            out.update(child.state_dict(prefix + k + "."))
        return out

    def __repr__(self) -> str:
        return f"PickledModule({self.class_name})"


# dnnlib.util.EasyDict stand-in: a plain dict subclass with no behaviour.
class _PickledEasyDict(dict):
    pass


# Plain-data copy of a pickled argument tree (EasyDict -> dict, numpy scalars -> Python numbers).
def _plain_pickled(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {k: _plain_pickled(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_pickled(v, where) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_pickled(v, where) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"{where}: unexpected {type(value).__name__} in the pickled constructor arguments")


# torch_utils.persistence._reconstruct_persistent_obj stand-in: returns a PickledModule, drops module_src.
def _persistent_record(meta: Any) -> PickledModule:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str) \
            or not isinstance(meta.get("state"), dict):
        raise _Refused("malformed persistent-object record (expected type='class', class_name, state)")
    return PickledModule(meta["class_name"], meta["state"])


# torch.storage._load_from_bytes stand-in: the nested legacy torch.save blob, read with weights_only=True.
def _storage_from_bytes(data: bytes):
    if not isinstance(data, bytes):
        raise _Refused("storage blob is not bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # TypedStorage deprecation notices.
            storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise _Refused(f"a tensor storage blob was refused by the weights-only loader ({first})") \
            from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _Refused(f"storage blob holds a {type(storage).__name__}, not a tensor storage")
    return storage


# torch._utils._rebuild_tensor_v2 stand-in: a tensor view of a storage; hooks and metadata are ignored.
def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.storage.TypedStorage):
        raise _Refused("tensor record without a tensor storage")
    if not (isinstance(storage_offset, int) and all(isinstance(s, int) for s in (*size, *stride))):
        raise _Refused("tensor record with non-integer offset, size or stride")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.empty(0, dtype=storage.dtype).set_(storage.untyped(), storage_offset, tuple(size), tuple(stride))


# torch._utils._rebuild_parameter stand-in: parameters become plain tensors (only their values are needed).
def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise _Refused("parameter record without a tensor")
    return data


# numpy scalar reconstructor stand-in (numpy.core / numpy._core .multiarray.scalar): numeric dtypes only.
def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes):
        raise _Refused(f"numpy scalar of unsupported dtype {dtype!r}")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


# numpy.dtype stand-in: only builtin numeric dtypes by name (the pickle then sets byte order via BUILD).
def _numpy_dtype(name, align=False, copy=False):
    dtype = np.dtype(name) if isinstance(name, str) else None
    if dtype is None or dtype.kind not in "biufc":
        raise _Refused(f"numpy dtype {name!r} is not allowed")
    return np.dtype(name, align=bool(align), copy=True)  # A copy: the pickle's BUILD must not alter numpy's own.


# The allow-list: (module, name) of every global an official snapshot refers to -> our stand-in.
_OFFICIAL_PICKLE_GLOBALS = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("dnnlib.util", "EasyDict"): _PickledEasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


# Unpickler that resolves only the allow-listed globals and refuses everything else by name; nothing is imported.
class _OfficialUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _OFFICIAL_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"global '{module}.{name}' is not allowed in a network pickle; "
                                         "refusing to load (nothing was executed)") from None

    def persistent_load(self, pid):
        raise _Refused("persistent ids are not allowed in a network pickle")


# Contents of an official snapshot: network records as PickledModule (G, D, G_ema, augment_pipe, or e.g. the
# StyleInV release's pSp/SI) and training_set_kwargs as a plain dict. Raises ValueError naming the file if it
# is not a safe, well-formed pickle of a dict.
def read_official_pickle(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pickle '{path}' does not exist")
    try:
        with open(path, "rb") as f:
            data = _OfficialUnpickler(f).load()
    except _Refused as e:
        raise ValueError(f"Pickle '{path}': {e}") from None
    except Exception as e:  # Truncated or garbled streams raise EOFError, ValueError, IndexError, ...
        raise ValueError(f"Pickle '{path}' is truncated or corrupted ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"Pickle '{path}' holds a {type(data).__name__}, not a dict of networks")
    return {k: (v if isinstance(v, PickledModule) or v is None else _plain_pickled(v, f"'{path}' [{k!r}]"))
            for k, v in data.items()}


# Keyword arguments of an official record bound to our constructor (same parameter names and order as ADA).
def _official_kwargs(record: PickledModule, cls: type, what: str) -> dict:
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]
    args = record.init_args
    if len(args) > len(params):
        raise ValueError(f"{what}: {len(args)} positional constructor arguments, {cls.__name__} takes {len(params)}")
    kwargs = {p.name: a for p, a in zip(params, args, strict=False)}
    kwargs.update(record.init_kwargs)
    kwargs.pop("class_name", None)
    return kwargs


# Translate an official Generator record (ADA, or StyleGAN3's stylegan2 config) into our Generator's arguments.
def _official_generator_kwargs(record: PickledModule, cls: type, what: str) -> dict:
    state_keys = record.state_dict().keys()
    if any(k.startswith("synthesis.input.") for k in state_keys):
        raise ValueError(f"{what}: this is an alias-free StyleGAN3 generator, which this project does not implement")
    kwargs = _official_kwargs(record, cls, what)
    kwargs.pop("fused_modconv_default", None)  # StyleGAN3 option choosing grouped convs; a speed choice only.
    if isinstance(kwargs.get("synthesis_kwargs"), dict):
        kwargs["synthesis_kwargs"].pop("fused_modconv_default", None)
    mapping = record.submodules.get("mapping")
    beta = mapping.state.get("w_avg_beta") if mapping is not None else None
    mapping_kwargs = dict(kwargs.get("mapping_kwargs") or {})
    if isinstance(beta, (float, np.floating)) and "w_avg_beta" not in mapping_kwargs and float(beta) != 0.995:
        mapping_kwargs["w_avg_beta"] = float(beta)  # StyleGAN3 tracks w_avg with 0.998.
    kwargs["mapping_kwargs"] = mapping_kwargs
    return kwargs


# Build our networks from an official pickle's Generator/Discriminator records (strict state-dict load).
def _official_networks(path: Path, names: list[str] | None) -> dict[str, torch.nn.Module]:
    classes = dict(Generator=networks_stylegan2.Generator, Discriminator=networks_stylegan2.Discriminator)
    content = read_official_pickle(path)
    records = {k: v for k, v in content.items() if isinstance(v, PickledModule)}
    if names is None:
        names = [k for k, v in records.items() if v.class_name in classes]
    nets = {}
    for name in names:
        record = records.get(name)
        if record is None:
            raise KeyError(f"Pickle '{path}' has no network '{name}'; it holds {list(records)}")
        if record.class_name not in classes:
            raise ValueError(f"Pickle '{path}': network '{name}' is a {record.class_name}, which has no equivalent "
                             f"here (supported: {', '.join(classes)})")
        cls = classes[record.class_name]
        what = f"Pickle '{path}', network '{name}'"
        if cls is networks_stylegan2.Generator:
            kwargs = _official_generator_kwargs(record, cls, what)
        else:
            kwargs = _official_kwargs(record, cls, what)
        nets[name] = _build_network(cls, kwargs, record.state_dict(), what)
    return nets
