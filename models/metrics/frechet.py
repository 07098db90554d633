"""Fréchet distance between two Gaussians, in float64, without a general matrix square root.

FID = |mu1 - mu2|^2 + Tr(S1) + Tr(S2) - 2 Tr(sqrt(S1 S2)). The product S1 S2 is not symmetric, and
``scipy.linalg.sqrtm`` on it is slow and returns complex noise for the rank-deficient covariances that
few samples give. For PSD S1 = L L^T the trace term equals Tr(sqrt(A)) with A = L^T S2 L, which is
symmetric PSD (same non-zero eigenvalues as S1 S2). L is a pivoted Cholesky factor of S1 with as many
columns as S1's numerical rank, so A is only r x r when there were fewer samples than dimensions;
A's eigenvalues come from ``eigvalsh``. Eigenvalues of A that come
out negative (round-off, or a covariance that is not PSD) would be imaginary square roots; they are
dropped from the trace and reported as ``imag_residue`` (sum of sqrt(|lambda|)), the analogue of the
imaginary part pytorch-fid checks. (A negative direction of S1 itself is cut off by the rank-revealing
factorisation instead; covariances computed from data are PSD up to round-off.)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg.lapack


@dataclasses.dataclass(frozen=True)
class FrechetResult:
    """The distance plus what it took to get it; ``float(result)`` gives the distance."""

    value: float
    mean_term: float  # |mu1 - mu2|^2
    trace_sqrt: float  # Tr(sqrt(S1 S2))
    imag_residue: float  # sum of sqrt(|negative eigenvalues|) dropped from trace_sqrt
    eps: float  # diagonal offset that was added to both covariances (0.0 when none was needed)

    def __float__(self) -> float:
        return self.value


def _sym(matrix: np.ndarray) -> np.ndarray:
    return (matrix + matrix.T) / 2


def _noise_floor(vals: np.ndarray) -> float:
    """Eigenvalues below this are round-off: eigh's absolute error is about dim * eps * |lambda_max|.

    Their square roots would not be round-off any more (sqrt(1e-15) = 3e-8 per dimension, summed over
    the hundreds of null directions of a covariance from fewer samples than dimensions), so they are zeroed.
    """
    return 10 * vals.size * np.finfo(np.float64).eps * float(np.abs(vals).max(initial=0.0))


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (round-off-sized eigenvalues -> 0)."""
    vals, vecs = np.linalg.eigh(_sym(np.asarray(matrix, dtype=np.float64)))
    vals = np.where(vals > _noise_floor(vals), vals, 0.0)
    return (vecs * np.sqrt(vals)) @ vecs.T


def psd_factor(matrix: np.ndarray) -> np.ndarray:
    """F (D x r) with F F^T = matrix, r its numerical rank, by pivoted Cholesky (LAPACK ``dpstrf``).

    Backward stable for PSD input and rank-revealing, at O(D^2 r): a covariance from fewer samples than
    feature dimensions costs far less than an eigendecomposition. Falls back to the eigh square root.
    """
    matrix = _sym(np.asarray(matrix, dtype=np.float64))
    c, piv, rank, info = scipy.linalg.lapack.dpstrf(matrix, lower=1)
    if info < 0 or not np.isfinite(c).all():
        return psd_sqrt(matrix)
    factor = np.zeros((matrix.shape[0], rank))
    factor[piv - 1] = np.tril(c)[:, :rank]
    return factor


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> tuple[float, float]:
    """(Tr(sqrt(cov1 @ cov2)), imaginary residue) for symmetric PSD covariances, in float64."""
    factor = psd_factor(cov1)
    inner = _sym(factor.T @ np.asarray(cov2, dtype=np.float64) @ factor)
    vals = np.linalg.eigvalsh(inner)
    floor = _noise_floor(vals)
    positive, negative = vals[vals > floor], vals[vals < -floor]
    return float(np.sqrt(positive).sum()), float(np.sqrt(-negative).sum())


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                     *, eps: float = 0.0, max_imag_residue: float = 1e-3) -> FrechetResult:
    """Fréchet distance of N(mu1, cov1) and N(mu2, cov2).

    ``eps`` adds eps*I to both covariances up front. If the eigendecompositions fail or leave an
    imaginary residue above ``max_imag_residue`` (relative to Tr(sqrt(S1 S2)) + 1), the computation
    is retried once with eps = 1e-6 (the offset pytorch-fid uses) and the offset is reported.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    cov1 = np.atleast_2d(np.asarray(cov1, dtype=np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, dtype=np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, cov {cov1.shape} vs {cov2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, cov1, cov2)):
        raise ValueError("statistics contain NaN or inf")

    def attempt(offset: float) -> tuple[float, float]:
        eye = np.eye(cov1.shape[0]) * offset
        return trace_sqrt_product(cov1 + eye, cov2 + eye)

    used = eps
    try:
        tr_sqrt, imag = attempt(used)
        bad = not np.isfinite(tr_sqrt) or imag > max_imag_residue * (abs(tr_sqrt) + 1.0)
    except np.linalg.LinAlgError:
        bad = True
    if bad and used < 1e-6:
        used = 1e-6
        tr_sqrt, imag = attempt(used)
    diff = mu1 - mu2
    mean_term = float(diff @ diff)
    dim = cov1.shape[0]
    value = mean_term + float(np.trace(cov1) + np.trace(cov2)) + 2 * dim * used - 2 * tr_sqrt
    return FrechetResult(value=value, mean_term=mean_term, trace_sqrt=tr_sqrt, imag_residue=imag, eps=used)
