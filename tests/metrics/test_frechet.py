import numpy as np
import pytest
import scipy.linalg

from models.metrics.frechet import frechet_distance, psd_factor, psd_sqrt, trace_sqrt_product


def _scipy_fid(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


@pytest.mark.parametrize("dim", [1, 8, 64])
def test_matches_scipy_sqrtm_on_random_gaussians(dim):
    rng = np.random.default_rng(dim)
    a = rng.normal(size=(4 * dim + 10, dim)) @ rng.normal(size=(dim, dim))
    b = rng.normal(size=(4 * dim + 10, dim)) * 1.5 + 0.3
    mu1, s1 = a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))
    mu2, s2 = b.mean(0), np.atleast_2d(np.cov(b, rowvar=False))
    result = frechet_distance(mu1, s1, mu2, s2)
    assert result.value == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), rel=1e-8, abs=1e-8)
    assert result.eps == 0.0 and result.imag_residue == 0.0
    assert float(result) == result.value


def test_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    d1, d2 = rng.uniform(0.1, 4, 32), rng.uniform(0.1, 4, 32)
    mu1, mu2 = rng.normal(size=32), rng.normal(size=32)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)).value == pytest.approx(expected, rel=1e-12)


def test_a_set_against_itself_is_zero_even_when_rank_deficient():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(20, 128))  # 20 samples in 128-d: covariance of rank 19
    mu, cov = feats.mean(0), np.cov(feats, rowvar=False)
    result = frechet_distance(mu, cov, mu, cov)
    assert abs(result.value) < 1e-8 * np.trace(cov)
    assert result.imag_residue < 1e-6


def test_is_symmetric_and_grows_with_mean_shift():
    rng = np.random.default_rng(2)
    s1 = np.cov(rng.normal(size=(50, 10)), rowvar=False)
    s2 = np.cov(rng.normal(size=(50, 10)) * 2, rowvar=False)
    mu = np.zeros(10)
    assert frechet_distance(mu, s1, mu, s2).value == pytest.approx(frechet_distance(mu, s2, mu, s1).value, rel=1e-9)
    shifts = [frechet_distance(mu, s1, mu + k, s1).value for k in (0.0, 0.5, 1.0)]
    assert shifts == pytest.approx([0.0, 10 * 0.25, 10.0], abs=1e-8)


def test_non_psd_input_reports_imaginary_residue_and_retries_with_offset():
    s1 = np.eye(3)
    s2 = np.diag([1.0, 1.0, -0.5])  # not a covariance: sqrt(S1 S2) is complex
    result = frechet_distance(np.zeros(3), s1, np.zeros(3), s2)
    assert result.imag_residue == pytest.approx(np.sqrt(0.5 + 1e-6), rel=1e-3)
    assert result.eps == 1e-6


def test_psd_sqrt_and_trace_sqrt_agree_with_scipy():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(12, 12))
    s = m @ m.T
    root = psd_sqrt(s)
    np.testing.assert_allclose(root @ root, s, rtol=1e-9, atol=1e-9)
    s2 = np.cov(rng.normal(size=(30, 12)), rowvar=False)
    tr, imag = trace_sqrt_product(s, s2)
    assert tr == pytest.approx(np.trace(scipy.linalg.sqrtm(s @ s2)).real, rel=1e-9)
    assert imag == 0.0


def test_rejects_bad_shapes_and_nan():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0]), np.eye(2))


def test_psd_factor_reveals_rank_and_reconstructs():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(10, 40))
    cov = np.cov(feats, rowvar=False)  # rank 9
    factor = psd_factor(cov)
    assert factor.shape == (40, 9)
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=1e-10, atol=1e-12)
    full = psd_factor(np.cov(rng.normal(size=(200, 40)), rowvar=False))
    assert full.shape == (40, 40)


def test_low_rank_against_full_rank_matches_scipy():
    rng = np.random.default_rng(5)
    few = rng.normal(size=(12, 30))
    many = rng.normal(size=(300, 30)) + 0.2
    s1, s2 = np.cov(few, rowvar=False), np.cov(many, rowvar=False)
    for a, b in ((s1, s2), (s2, s1)):
        got = frechet_distance(np.zeros(30), a, np.ones(30), b).value
        assert got == pytest.approx(_scipy_fid(np.zeros(30), a, np.ones(30), b), rel=1e-7)
