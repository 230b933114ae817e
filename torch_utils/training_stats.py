"""Cheap statistics reporting from anywhere in a training step, reduced across ranks once per tick."""

from collections import defaultdict

import torch
import torch.distributed as dist

from torch_utils import distributed


# Accumulates count, sum and sum of squares per name (float64, on the reporting device); `collect()` all-reduces
# them once and returns {name: {num, mean, std}}. One instance per training run, passed explicitly (no globals).
class Stats:
    def __init__(self, device: torch.device):
        self.device = device
        self._moments: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros(3, dtype=torch.float64,
                                                                                   device=self.device))
        self._names: list[str] = []

    def report(self, name: str, value) -> None:
        v = torch.as_tensor(value).detach().flatten().to(device=self.device, dtype=torch.float64)
        if v.numel() == 0:
            return
        if name not in self._moments:
            self._names.append(name)
        self._moments[name] += torch.stack([torch.tensor(float(v.numel()), dtype=torch.float64,
                                                         device=self.device), v.sum(), v.square().sum()])

    def collect(self) -> dict[str, dict[str, float]]:
        # Every rank must report the same names in the same order for the all-reduce to line up.
        names = sorted(set().union(*distributed.all_gather_object(sorted(self._names))))
        if not names:
            return {}
        stacked = torch.stack([self._moments[n] for n in names])
        if distributed.get_world_size() > 1:
            dist.all_reduce(stacked)
        result = {}
        for name, (num, total, sq) in zip(names, stacked.cpu().tolist()):
            if num == 0:
                continue
            mean = total / num
            result[name] = dict(num=num, mean=mean, std=max(sq / num - mean * mean, 0.0) ** 0.5)
        self._moments.clear()
        self._names.clear()
        return result
