"""Writers of pickles in the official layouts, for the tests of training/checkpoint.py and
training/release_checkpoint.py: persistent-class records as stylegan2-ada-pytorch's torch_utils.persistence writes
them (class source embedded, _init_args/_init_kwargs recorded), EasyDicts, and OmegaConf DictConfig/ListConfig in
omegaconf 2.1-2.3's pickle layout. Only stand-in modules with the official module/class names are registered in
sys.modules, and only while writing; no official code is imported or needed.
"""

import collections
import contextlib
import copy
import pickle
import sys
import types
import typing

import torch

# What a persistent record's module_src would hold; the reader must never run it.
FAKE_SOURCE = "import pathlib\npathlib.Path('module-src-was-executed').touch()\n"
_STANDIN_CLASSES = {"dnnlib.util": ("EasyDict",), "omegaconf.dictconfig": ("DictConfig",),
                    "omegaconf.listconfig": ("ListConfig",), "omegaconf.nodes": ("AnyNode",),
                    "omegaconf.base": ("Metadata", "ContainerMetadata")}


# Stand-in modules torch_utils.persistence, dnnlib.util and omegaconf.* registered while writing; yields a namespace
# with their classes (EasyDict is a dict subclass; the omegaconf ones are plain classes pickled with their __dict__,
# as omegaconf's are) and `reconstruct`, the persistence function the records name.
@contextlib.contextmanager
def writer_modules():
    names = ("torch_utils.persistence", "omegaconf", *_STANDIN_CLASSES)  # omegaconf: the package of the others.
    modules = {name: types.ModuleType(name) for name in names}
    ns = types.SimpleNamespace()

    def _reconstruct_persistent_obj(meta):  # Never called: the reader maps this name to its own record builder.
        raise AssertionError("stand-in must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = ns.reconstruct = _reconstruct_persistent_obj
    for module, names in _STANDIN_CLASSES.items():
        for name in names:
            cls = type(name, (dict,) if name == "EasyDict" else (), {"__module__": module, "__qualname__": name})
            setattr(modules[module], name, cls)
            setattr(ns, name, cls)
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield ns
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


# A persistent_class object as persistence pickles it: _reconstruct_persistent_obj(meta) with the module's __dict__.
class Persistent:
    def __init__(self, fn, class_name: str, state: dict):
        self.fn, self.meta = fn, dict(type="class", version=6, module_src=FAKE_SOURCE, class_name=class_name,
                                      state=state)

    def __reduce__(self):
        return (self.fn, (self.meta,))


# EasyDict tree of a nested dict (as dnnlib-built constructor arguments are).
def easydict_tree(ns, value):
    if isinstance(value, dict):
        return ns.EasyDict({k: easydict_tree(ns, v) for k, v in value.items()})
    return value


# An OmegaConf container of plain data, attribute for attribute as omegaconf 2.3 builds it from a YAML file
# (AnyNode leaves, typing.Any reference types, parent links, an empty defaultdict resolver cache per node).
def omegaconf_tree(ns, value, parent=None, key=None):
    def metadata(cls, object_type, **extra):
        meta = cls()
        meta.__dict__.update(ref_type=typing.Any, object_type=object_type, optional=True, key=key, flags={},
                             flags_root=False, resolver_cache=collections.defaultdict(dict), **extra)
        return meta

    if isinstance(value, (dict, list)):
        is_dict = isinstance(value, dict)
        node = (ns.DictConfig if is_dict else ns.ListConfig)()
        meta = metadata(ns.ContainerMetadata, dict if is_dict else list,
                        key_type=typing.Any if is_dict else int, element_type=typing.Any)
        node.__dict__.update(_metadata=meta, _parent=parent, _content=None)
        items = value.items() if is_dict else enumerate(value)
        content = {k: omegaconf_tree(ns, v, node, k) for k, v in items}
        node._content = content if is_dict else list(content.values())
        return node
    node = ns.AnyNode()
    node.__dict__.update(_metadata=metadata(ns.Metadata, None), _parent=parent, _val=value)
    return node


# A config that the writer pickles as an OmegaConf DictConfig (see omegaconf_tree).
class Omega:
    def __init__(self, data: dict):
        self.data = data


# A dict that the writer pickles as a dnnlib EasyDict tree.
class Easy(dict):
    pass


# `value` with every Omega (also inside plain dicts, lists and tuples) turned into an OmegaConf tree, every Easy
# into an EasyDict tree.
def _materialize(ns, value):
    if isinstance(value, Omega):
        return omegaconf_tree(ns, value.data)
    if isinstance(value, Easy):
        return easydict_tree(ns, dict(value))
    if type(value) in (dict, list, tuple):
        items = [_materialize(ns, v) for v in (value.values() if type(value) is dict else value)]
        return dict(zip(value, items, strict=True)) if type(value) is dict else type(value)(items)
    return value


# The nn.Module attribute dict of a persistent record: `module`'s own, with children turned into records.
def _module_state(ns, module: torch.nn.Module, child) -> dict:
    state = {k: _materialize(ns, v) for k, v in module.__dict__.items() if not k.startswith("release_")}
    state["_modules"] = collections.OrderedDict((k, child(v)) for k, v in module._modules.items())
    return state


# A torch module tree as the release pickles it. Modules with a `release_class` attribute (see ReleaseModule) become
# persistent records under that class name with their recorded constructor arguments (Omega configs as OmegaConf);
# other torch.nn modules are pickled as themselves (by reference to their torch.nn class), children converted.
def release_records(ns, module: torch.nn.Module):
    def convert(m):
        if getattr(m, "release_class", None) is None:
            clone = copy.copy(m)
            clone.__dict__["_modules"] = collections.OrderedDict((k, convert(v)) for k, v in m._modules.items())
            return clone
        state = _module_state(ns, m, convert)
        state.update(_init_args=_materialize(ns, tuple(m.release_args)),
                     _init_kwargs=_materialize(ns, dict(m.release_kwargs)))
        return Persistent(ns.reconstruct, m.release_class, state)

    return convert(module)


# An nn.Module standing for an object of a release (persistent) class: its class name, recorded constructor
# arguments and plain attributes; children, parameters and buffers are added as on any module.
class ReleaseModule(torch.nn.Module):
    def __init__(self, class_name: str, args: tuple = (), kwargs: dict | None = None, **attrs):
        super().__init__()
        self.release_class, self.release_args, self.release_kwargs = class_name, tuple(args), dict(kwargs or {})
        for k, v in attrs.items():
            setattr(self, k, v)


# One of our networks (or any module tree with stylegan2-ada-pytorch's names) as persistent records, every
# submodule under its own class name (or `class_names[type]`), the top one with the given constructor arguments.
def official_records(ns, module: torch.nn.Module, init_args=(), init_kwargs=None, class_names=None, attrs=None):
    class_names, attrs = class_names or {}, attrs or (lambda m: {})

    def record(m, kwargs, args=()):
        state = _module_state(ns, m, lambda c: record(c, {}))
        state.update(attrs(m), _init_args=tuple(args), _init_kwargs=easydict_tree(ns, kwargs))
        return Persistent(ns.reconstruct, class_names.get(type(m), type(m).__name__), state)

    return record(module, init_kwargs or {}, init_args)


# Pickle bytes of `data` built inside writer_modules() by `build(ns)`.
def dumps(build, protocol: int = 4) -> bytes:
    with writer_modules() as ns:
        return pickle.dumps(build(ns), protocol=protocol)
