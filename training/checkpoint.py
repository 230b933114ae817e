"""Checkpoints: our torch.save format (class + init_kwargs + state dict per network, plus training state) and a
code-free reader for official stylegan2-ada-pytorch `.pkl` snapshots (STYLEGAN2.md 1.5-1.7)."""

import collections
import functools
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
from training import networks_stylegan2, release_checkpoint
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
def is_plain_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


# Raw content of one of our checkpoints (read with weights_only=True, tensors on CPU). Raises FileNotFoundError
# or ValueError naming the file when it is missing, truncated, corrupted or not in our format.
def load_checkpoint(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist")
    if is_plain_pickle(path):
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
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: cannot build {cls.__name__} from the stored arguments ({e})") from None
    try:
        net.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise ValueError(f"{what}: stored tensors do not fit {cls.__name__} ({detail[:500]})") from None
    return net


# Networks of a checkpoint, ours or an official .pkl (stylegan2-ada-pytorch: G, D, G_ema; the StyleInV release's
# stage 2: encoder (its pSp), G; stage 3: G, D, motion_generator(_ema) (its SI, SI_ema)), rebuilt as this project's
# classes, in eval mode with requires_grad False, on `device`. `names` selects networks (default: all that can be
# built; an official pickle's augment_pipe is skipped, see read_official_pickle for it).
def load_networks(path: str | os.PathLike, device: torch.device | str = "cpu",
                  names: list[str] | None = None) -> dict[str, torch.nn.Module]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist")
    if is_plain_pickle(path):
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
    if path.is_file() and is_plain_pickle(path):
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
# Official stylegan2-ada-pytorch pickles (STYLEGAN2.md 1.5, 1.6) and the StyleInV release's, in their layout
# (SPEC 0): an allow-list unpickler; no NVIDIA, release or omegaconf code is imported, the embedded module_src is
# never executed or kept.


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

    # Child records by attribute name (a child that is not a record is a ValueError).
    @property
    def submodules(self) -> dict[str, "PickledModule"]:
        children = {k: v for k, v in (self.state.get("_modules") or {}).items() if v is not None}
        for k, v in children.items():
            if not isinstance(v, PickledModule):
                raise ValueError(f"{self.class_name} record: submodule '{k}' is a {type(v).__name__}, not a module")
        return children

    # Flattened parameters and persistent buffers with the same dotted names and order as nn.Module.state_dict().
    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        out = {}
        skip = self.state.get("_non_persistent_buffers_set") or set()
        tensors = [*(self.state.get("_parameters") or {}).items(),
                   *((k, v) for k, v in (self.state.get("_buffers") or {}).items() if k not in skip)]
        for k, v in tensors:
            if v is not None and not isinstance(v, torch.Tensor):
                raise ValueError(f"{self.class_name} record: '{prefix}{k}' is a {type(v).__name__}, not a tensor")
            if v is not None:
                out[prefix + k] = v.detach()
        for k, child in self.submodules.items():
            out.update(child.state_dict(prefix + k + "."))
        return out

    def __repr__(self) -> str:
        return f"PickledModule({self.class_name})"


# dnnlib.util.EasyDict stand-in: a plain dict subclass with no behaviour.
class _PickledEasyDict(dict):
    pass


# Stand-in base for the objects that omegaconf pickles (created empty by NEWOBJ, then given their attribute dict by
# BUILD, which lands in `state`): a call with arguments (a REDUCE gadget) or a non-dict state is refused.
class _PickledObject:
    pickled_name = "object"

    def __new__(cls, *args, **kwargs):
        if args or kwargs:
            raise _Refused(f"{cls.pickled_name} was called with arguments, which its pickles never do; refusing "
                           "to load")
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise _Refused(f"{self.pickled_name} with a {type(state).__name__} state instead of a dict")
        self.state = state


# omegaconf.dictconfig.DictConfig / omegaconf.listconfig.ListConfig: the data is state['_content'] (a dict or list
# of value nodes and containers; None for a None-valued container); metadata and parent links are ignored.
class _PickledDictConfig(_PickledObject):
    pickled_name = "omegaconf.dictconfig.DictConfig"


class _PickledListConfig(_PickledObject):
    pickled_name = "omegaconf.listconfig.ListConfig"


# omegaconf.nodes.*Node: a leaf whose value is state['_val'].
class _PickledConfigValue(_PickledObject):
    pickled_name = "omegaconf value node"


# omegaconf.base.Metadata / ContainerMetadata (types, flags, key of a node): read and dropped.
class _PickledConfigMetadata(_PickledObject):
    pickled_name = "omegaconf metadata"


# A type named in omegaconf metadata (typing.Any, builtins.dict, ...): an inert marker, never the type itself.
class _TypeRef:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"_TypeRef({self.name})"


# collections.defaultdict stand-in (omegaconf metadata's resolver cache): an empty plain dict.
def _defaultdict(default_factory=None):
    return {}


# A torch.nn class that release records contain by reference (Sequential, Conv2d, BatchNorm2d, ...): a
# PickledModule named "torch.nn.<Name>" holding the module's attribute dict; nothing of torch.nn is called.
class _PickledTorchModule(_PickledObject, PickledModule):
    def __init__(self, *args, **kwargs):  # REDUCE without arguments: the empty record from __new__.
        pass


# torch.nn.modules.module._IncompatibleKeys (the result of a load_state_dict kept on a release module): a tuple.
class _PickledIncompatibleKeys(tuple):
    def __new__(cls, *args):
        return super().__new__(cls, args)

    def __setstate__(self, state):
        pass


_OMEGACONF_VALUE_NODES = ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode")
_TORCH_NN_CLASSES = {"container": ("Sequential", "ModuleList"), "conv": ("Conv2d",),
                     "batchnorm": ("BatchNorm2d",), "instancenorm": ("InstanceNorm2d",),
                     "activation": ("PReLU", "ReLU", "LeakyReLU", "Sigmoid"),
                     "pooling": ("MaxPool2d", "AdaptiveAvgPool2d"), "sparse": ("Embedding",),
                     "linear": ("Linear",), "rnn": ("LSTM",)}


# Plain-data copy of a pickled argument tree: EasyDict -> dict, OmegaConf containers -> dict/list of their values,
# numpy scalars -> Python numbers. `where` names the position in errors; a cycle is an error.
def _plain_pickled(value: Any, where: str, _active: frozenset = frozenset()) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if id(value) in _active:
        raise ValueError(f"{where}: the pickled arguments contain a cycle")
    active = _active | {id(value)}
    if isinstance(value, (_PickledDictConfig, _PickledListConfig)):
        content = value.state.get("_content")
        if content is None:
            return None
        kind = dict if isinstance(value, _PickledDictConfig) else list
        if type(content) is not kind:
            raise ValueError(f"{where}: an OmegaConf {kind.__name__} config holds a {type(content).__name__} "
                             f"({content!r:.60}), not a {kind.__name__} (a missing value or an interpolation?)")
        return _plain_pickled(content, where, active)
    if isinstance(value, _PickledConfigValue):
        leaf = value.state.get("_val")
        if isinstance(leaf, str) and (leaf == "???" or "${" in leaf):
            raise ValueError(f"{where}: {leaf!r} is a missing value or an unresolved OmegaConf interpolation")
        return _plain_pickled(leaf, where, active)
    if isinstance(value, dict):
        return {_plain_pickled(k, f"{where} key", active): _plain_pickled(v, f"{where}.{k}", active)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_pickled(v, f"{where}[{i}]", active) for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(_plain_pickled(v, f"{where}[{i}]", active) for i, v in enumerate(value))
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
    # The StyleInV release: OmegaConf configs as constructor arguments (omegaconf 2.1-2.3 layout)...
    ("omegaconf.dictconfig", "DictConfig"): _PickledDictConfig,
    ("omegaconf.listconfig", "ListConfig"): _PickledListConfig,
    **{("omegaconf.nodes", name): _PickledConfigValue for name in _OMEGACONF_VALUE_NODES},
    ("omegaconf.base", "Metadata"): _PickledConfigMetadata,
    ("omegaconf.base", "ContainerMetadata"): _PickledConfigMetadata,
    ("collections", "defaultdict"): _defaultdict,
    ("typing", "Any"): _TypeRef("typing.Any"),
    **{("builtins", name): _TypeRef(f"builtins.{name}") for name in ("dict", "list", "int", "float", "str", "bool")},
    # ... and torch.nn modules inside its persistent records.
    **{(f"torch.nn.modules.{module}", name): type(name, (_PickledTorchModule,), dict.fromkeys(
        ("pickled_name", "class_name"), f"torch.nn.{name}")) for module, names in _TORCH_NN_CLASSES.items()
       for name in names},
    ("torch.nn.modules.module", "_IncompatibleKeys"): _PickledIncompatibleKeys,
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


# Builders of our networks from an official pickle's records: {our name: () -> (class, kwargs, state dict)} for
# StyleGAN2-ADA Generator/Discriminator records and the StyleInV release's networks (training/release_checkpoint.py).
def _official_builders(records: dict[str, PickledModule], what: str) -> dict:
    classes = dict(Generator=networks_stylegan2.Generator, Discriminator=networks_stylegan2.Discriminator)
    builders = {name: functools.partial(_stylegan2_network, record, classes[record.class_name],
                                        f"{what}, network '{name}'")
                for name, record in records.items() if record.class_name in classes}
    builders.update(release_checkpoint.network_builders(records, what))
    return builders


# (class, kwargs, state dict) of an official StyleGAN2 Generator or Discriminator record.
def _stylegan2_network(record: PickledModule, cls: type, what: str) -> tuple[type, dict, dict]:
    if cls is networks_stylegan2.Generator:
        return cls, _official_generator_kwargs(record, cls, what), record.state_dict()
    return cls, _official_kwargs(record, cls, what), record.state_dict()


# Our names of the networks in an official pickle's records (the release's pSp/SI/SI_ema under ours), in order.
def _official_names(records: dict[str, PickledModule], builders: dict) -> list[str]:
    renamed = release_checkpoint.RELEASE_NAMES
    return [renamed[k] if renamed.get(k) in builders else k for k in records]


# Names of the networks of a checkpoint, ours or an official pickle (as load_networks names them), without building
# them.
def network_names(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist")
    if not is_plain_pickle(path):
        return list(load_checkpoint(path)["networks"])
    records = {k: v for k, v in read_official_pickle(path).items() if isinstance(v, PickledModule)}
    return _official_names(records, _official_builders(records, f"Pickle '{path}'"))


# Build our networks from an official pickle's records (strict state-dict load).
def _official_networks(path: Path, names: list[str] | None) -> dict[str, torch.nn.Module]:
    records = {k: v for k, v in read_official_pickle(path).items() if isinstance(v, PickledModule)}
    what = f"Pickle '{path}'"
    builders = _official_builders(records, what)
    for name in names or []:
        if name in builders:
            continue
        renamed = release_checkpoint.RELEASE_NAMES.get(name)
        if renamed in builders:
            raise KeyError(f"{what}: the release's network '{name}' is loaded as '{renamed}'")
        if name not in records:
            raise KeyError(f"{what} has no network '{name}'; it holds {_official_names(records, builders)}")
        raise ValueError(f"{what}: network '{name}' is a {records[name].class_name}, which has no equivalent here "
                         "(supported: StyleGAN2-ADA Generator and Discriminator; the StyleInV release's pSp, StyleInV "
                         "and StyleGAN-V Discriminator)")
    nets = {}
    for name in names if names is not None else list(builders):
        where = f"{what}, network '{name}'"
        try:
            cls, kwargs, state = builders[name]()
        except KeyError as e:
            raise ValueError(f"{where}: malformed record (it lacks {e})") from None
        except ValueError as e:
            if str(e).startswith(what):
                raise
            raise ValueError(f"{where}: {e}") from None
        nets[name] = _build_network(cls, kwargs, state, where)
    return nets
