"""Plain data: what a checkpoint may hold (`plain_data`) and the decorator that records a network's constructor
arguments as such (`store_init_kwargs`). Imported by the network modules and by training/checkpoint.py, and
importing neither, so that the two need not import each other."""

import functools
import inspect
from typing import Any

import numpy as np
import torch


# Convert `value` to data that torch.load(weights_only=True) reads: dict/list/tuple/set/str/bytes/int/float/bool/
# None, torch tensors (moved to CPU), dtypes, devices. numpy scalars become Python numbers and numpy arrays become
# tensors; with json_only, only JSON types are allowed (tuples become lists). Anything else raises TypeError
# naming where it was found.
def plain_data(value: Any, where: str = "value", json_only: bool = False) -> Any:
    if isinstance(value, np.generic):  # First: numpy.float64 is also a Python float.
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if json_only and not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} is not a string")
            out[plain_data(k, f"{where} key", json_only)] = plain_data(v, f"{where}[{k!r}]", json_only)
        return out
    if isinstance(value, (list, tuple)):
        items = [plain_data(v, f"{where}[{i}]", json_only) for i, v in enumerate(value)]
        return items if (json_only or isinstance(value, list)) else tuple(items)
    if not json_only:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError(f"{where}: numpy object arrays are not supported")
            return torch.from_numpy(np.ascontiguousarray(value).copy())
        if isinstance(value, (bytes, torch.dtype, torch.device)):
            return value
        if isinstance(value, (set, frozenset)):
            return {plain_data(v, f"{where} item", json_only) for v in value}
    kinds = "dict/list/str/int/float/bool/None" if json_only else "tensors, numbers, strings, lists and dicts"
    raise TypeError(f"{where}: {type(value).__module__}.{type(value).__qualname__} is not plain data ({kinds})")


# Decorator for a network's __init__: records its arguments (defaults filled in, **kwargs flattened) as
# `self.init_kwargs`, a JSON-able dict, so that `type(self)(**self.init_kwargs)` rebuilds it. Raises TypeError
# before construction if an argument is not plain data. Usage:
#     class MyNet(torch.nn.Module):
#         @store_init_kwargs
#         def __init__(self, channels: int, depth: int = 4): ...
def store_init_kwargs(init):
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        recorded = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{type(self).__name__}: positional *{name} cannot be recorded in init_kwargs")
            elif kind == inspect.Parameter.VAR_KEYWORD:
                recorded.update(value)
            else:
                recorded[name] = value
        recorded = plain_data(recorded, f"{type(self).__name__} constructor arguments", json_only=True)
        init(self, *args, **kwargs)
        self.init_kwargs = recorded  # Set last, so a subclass's record overrides its base class's.

    return wrapper
