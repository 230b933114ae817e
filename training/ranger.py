"""Ranger = RAdam + Lookahead (k steps forward, then the slow weights move alpha of the way): pSp's optimizer."""

import torch


# Lookahead around any optimizer: every k steps, slow <- slow + alpha * (fast - slow) and fast <- slow.
class Lookahead:
    def __init__(self, base: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5):
        self.base, self.k, self.alpha = base, k, alpha
        self.num_steps = 0
        self.slow = [p.detach().clone() for p in self._params()]

    def _params(self):
        return [p for group in self.base.param_groups for p in group["params"]]

    @property
    def param_groups(self):
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        self.base.step()
        self.num_steps += 1
        if self.num_steps % self.k == 0:
            for slow, fast in zip(self.slow, self._params()):
                slow.lerp_(fast, self.alpha)
                fast.copy_(slow)

    def state_dict(self) -> dict:
        return dict(base=self.base.state_dict(), num_steps=self.num_steps, slow=[s.clone() for s in self.slow])

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self.num_steps = int(state["num_steps"])
        with torch.no_grad():
            for slow, saved in zip(self.slow, state["slow"]):
                slow.copy_(saved)


# pSp's default optimizer settings: RAdam(betas (0.95, 0.999), eps 1e-5) inside Lookahead(k=6, alpha=0.5).
def ranger(params, lr: float = 1e-4, betas=(0.95, 0.999), eps: float = 1e-5, k: int = 6,
           alpha: float = 0.5) -> Lookahead:
    return Lookahead(torch.optim.RAdam(params, lr=lr, betas=betas, eps=eps), k=k, alpha=alpha)
