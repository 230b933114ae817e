"""Feature statistics (float64 running sums, mergeable across ranks) and the Fréchet distance behind FID and FVD."""

import numpy as np
import scipy.linalg
import torch
import torch.distributed as dist


# Running sum of x and of x x^T over feature rows, in float64 on the features' device. Statistics of disjoint shards
# merge by adding (`merge`, or `all_reduce` across ranks), so sharded and single-pass results agree up to
# summation order. Covariance 1/N (StyleGAN-V, StyleGAN2-ADA) by default, 1/(N-1) with unbiased=True.
class FeatureStats:
    def __init__(self, dim: int | None = None, device: str | torch.device = "cpu"):
        self.num = 0
        self.sum = self.sum_outer = None
        if dim is not None:
            self._allocate(dim, torch.device(device))

    def _allocate(self, dim: int, device: torch.device) -> None:
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.sum_outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    @property
    def dim(self) -> int | None:
        return None if self.sum is None else self.sum.shape[0]

    def append(self, x: torch.Tensor) -> None:
        x = torch.as_tensor(x)
        if x.ndim != 2:
            raise ValueError(f"FeatureStats.append expects [N, D] features, got shape {tuple(x.shape)}")
        if self.sum is None:
            self._allocate(x.shape[1], x.device)
        if x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} does not match the statistics' dim {self.dim}")
        x = x.detach().to(device=self.sum.device, dtype=torch.float64)
        self.sum += x.sum(0)
        self.sum_outer += x.T @ x
        self.num += x.shape[0]

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        if other.sum is None:
            return self
        if self.sum is None:
            self._allocate(other.dim, other.sum.device)
        self.sum += other.sum.to(self.sum.device)
        self.sum_outer += other.sum_outer.to(self.sum.device)
        self.num += other.num
        return self

    # Sum the statistics of all ranks (every rank must call this; all must hold the same dim).
    def all_reduce(self) -> "FeatureStats":
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        num = torch.tensor([float(self.num)], dtype=torch.float64, device=self.sum.device)
        for t in (self.sum, self.sum_outer, num):
            dist.all_reduce(t)
        self.num = int(num.item())
        return self

    # Mean and covariance as float64 numpy arrays.
    def mean_cov(self, unbiased: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if self.num < (2 if unbiased else 1):
            raise ValueError(f"cannot compute a covariance from {self.num} feature vectors")
        mean = self.sum / self.num
        cov = (self.sum_outer - self.num * torch.outer(mean, mean)) / (self.num - 1 if unbiased else self.num)
        return mean.cpu().numpy(), cov.cpu().numpy()

    def state_dict(self) -> dict:
        return dict(num=torch.tensor(self.num), sum=self.sum.cpu(), sum_outer=self.sum_outer.cpu())

    @classmethod
    def from_state_dict(cls, sd: dict, device: str | torch.device = "cpu") -> "FeatureStats":
        stats = cls()
        stats.num = int(sd["num"])
        stats.sum = sd["sum"].to(device=device, dtype=torch.float64)
        stats.sum_outer = sd["sum_outer"].to(device=device, dtype=torch.float64)
        return stats


# Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017; FVD: Unterthiner et al. 2018):
#   d = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr sqrt(sigma1 sigma2),
# in float64. method='eigh' (default) takes tr sqrt(sigma1 sigma2) = sum sqrt(eig(S sigma2 S)), S = sigma1^(1/2)
# by a symmetric eigendecomposition (negative round-off eigenvalues clipped to 0); method='sqrtm' is StyleGAN-V's
# scipy.linalg.sqrtm(sigma1 @ sigma2) with the imaginary part dropped (parity option; slower for large dims).
def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh", device: str | torch.device = "cpu") -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape}/{mu2.shape}, sigma {sigma1.shape}/{sigma2.shape}")
    mean_term = float(np.square(mu1 - mu2).sum())
    if method == "sqrtm":
        tr_sqrt = float(np.real(np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2))))
    elif method == "eigh":
        tr_sqrt = _trace_sqrt_product(torch.as_tensor(sigma1, device=device), torch.as_tensor(sigma2, device=device))
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got '{method}'")
    return mean_term + float(np.trace(sigma1) + np.trace(sigma2)) - 2 * tr_sqrt


# tr sqrt(A B) for symmetric PSD A, B, via the similar symmetric matrix A^(1/2) B A^(1/2).
def _trace_sqrt_product(a: torch.Tensor, b: torch.Tensor) -> float:
    evals, evecs = torch.linalg.eigh((a + a.T) / 2)
    sqrt_a = (evecs * evals.clamp(min=0).sqrt()) @ evecs.T
    m = sqrt_a @ b @ sqrt_a
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum())


# Fréchet distance between the Gaussians fitted to two FeatureStats.
def frechet_distance_from_stats(a: FeatureStats, b: FeatureStats, unbiased: bool = False, method: str = "eigh",
                                device: str | torch.device = "cpu") -> float:
    mu1, sigma1 = a.mean_cov(unbiased)
    mu2, sigma2 = b.mean_cov(unbiased)
    return frechet_distance(mu1, sigma1, mu2, sigma2, method=method, device=device)
