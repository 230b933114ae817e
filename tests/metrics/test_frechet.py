"""Tests for metrics/frechet.py: Fréchet distance closed forms, scipy parity, streaming statistics."""

import numpy as np
import pytest
import scipy.linalg
import torch

from metrics.frechet import FeatureStats, frechet_distance, frechet_distance_from_stats


def _random_spd(d: int, seed: int, rank: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((d, rank or 2 * d))
    return a @ a.T / a.shape[1] + (0 if rank else 0.1 * np.eye(d))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_identical_gaussians_give_zero(method):
    mu, sigma = np.arange(6.0), _random_spd(6, 0)
    assert abs(frechet_distance(mu, sigma, mu, sigma, method=method)) < 1e-9


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_shifted_means_give_squared_distance(method):
    sigma = _random_spd(5, 1)
    mu1 = np.random.default_rng(2).standard_normal(5)
    mu2 = mu1 + np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(mu1, sigma, mu2, sigma, method=method) == pytest.approx(1 + 4 + 0.25 + 9, rel=1e-9)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_commuting_diagonal_covariances_closed_form(method):
    # tr(A + B - 2 sqrt(AB)) = sum (sqrt(a_i) - sqrt(b_i))^2 for diagonal A, B.
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 2.0])
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.0, 0.0, 1.0])
    expected = 2 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expected, rel=1e-10)


def test_eigh_matches_scipy_sqrtm_reference():
    d = 40
    s1, s2 = _random_spd(d, 3), _random_spd(d, 4, rank=d // 2)  # One rank-deficient, as with few samples.
    mu1, mu2 = np.ones(d), np.zeros(d)
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    reference = d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2, method="eigh") == pytest.approx(reference, rel=1e-7)
    assert frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(reference, rel=1e-12)


def test_frechet_rejects_bad_shapes_and_method():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd")


@pytest.mark.parametrize("unbiased", [False, True])
def test_stats_mean_cov_match_numpy(unbiased):
    x = np.random.default_rng(5).standard_normal((50, 7)).astype(np.float32)
    stats = FeatureStats()
    for chunk in np.array_split(x, 4):
        stats.append(torch.from_numpy(chunk))
    mean, cov = stats.mean_cov(unbiased=unbiased)
    assert stats.num == 50 and mean.dtype == np.float64
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False, bias=not unbiased), atol=1e-12)


def test_stats_merged_over_two_ranks_equal_single_pass():
    x = torch.from_numpy(np.random.default_rng(6).standard_normal((37, 5)))
    single = FeatureStats()
    single.append(x)
    ranks = [FeatureStats(5), FeatureStats(5)]
    for i in range(0, 37, 4):  # Interleaved batches as sharded loading hands them out.
        ranks[(i // 4) % 2].append(x[i:i + 4])
    merged = FeatureStats().merge(ranks[0]).merge(ranks[1])
    assert merged.num == single.num
    torch.testing.assert_close(merged.sum, single.sum, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged.sum_outer, single.sum_outer, rtol=1e-12, atol=1e-12)


def test_stats_state_dict_round_trip_and_fd_from_stats():
    rng = np.random.default_rng(7)
    a, b = FeatureStats(), FeatureStats()
    a.append(torch.from_numpy(rng.standard_normal((200, 4))))
    b.append(torch.from_numpy(rng.standard_normal((200, 4)) + 1))
    restored = FeatureStats.from_state_dict(a.state_dict())
    assert restored.num == a.num and torch.equal(restored.sum_outer, a.sum_outer)
    mu1, s1 = a.mean_cov()
    mu2, s2 = b.mean_cov()
    assert frechet_distance_from_stats(restored, b) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-12)


def test_unbiased_switch_scales_trace_term_exactly():
    # Scaling both covariances by c = (N-1)/N scales the trace term by c (METRICS.md section 1.4).
    rng = np.random.default_rng(8)
    a, b = FeatureStats(), FeatureStats()
    a.append(torch.from_numpy(rng.standard_normal((30, 3))))
    b.append(torch.from_numpy(2 * rng.standard_normal((30, 3))))
    mu1, mu2 = a.mean_cov()[0], b.mean_cov()[0]
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    biased = frechet_distance_from_stats(a, b) - mean_term
    unbiased = frechet_distance_from_stats(a, b, unbiased=True) - mean_term
    assert biased == pytest.approx(unbiased * 29 / 30, rel=1e-10)


def test_stats_errors():
    stats = FeatureStats(3)
    with pytest.raises(ValueError, match="covariance"):
        stats.mean_cov()
    with pytest.raises(ValueError, match="dim"):
        stats.append(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        stats.append(torch.zeros(3))
