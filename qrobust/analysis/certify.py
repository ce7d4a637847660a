"""Certified robustness to label flipping: deep partition aggregation and randomized smoothing over labels.

Deep partition aggregation (DPA; Levine & Feizi, "Deep Partition Aggregation: Provable Defenses against General
Poisoning Attacks", arXiv:2006.14768, ICLR 2021). The training set is split into k partitions by a hash of each
sample's INPUT (``hash_partition``: never of its label, so flipping a label moves no sample between partitions);
one base model is trained on each partition by a deterministic procedure (the study trains the k partitions as
replicas of one compiled program, every partition with the same seed); the ensemble predicts the class with the
most votes, ties to the smaller class index. A flipped label changes one partition's training set, so at most
one vote: the top count falls by one and the runner-up's rises by one. With n_c the predicted class's votes and
n_c' the other's, the prediction survives any r flips iff n_c - r > n_c' + r, or equality with c < c': the
certified number of flips is floor((n_c - n_c' - [c' < c]) / 2) (the paper's Theorem 1 with its tie-break; for
label flips only, the same bound as its SS-DPA). ``dpa_certificate``.

Randomized smoothing over labels (Rosenfeld, Winston, Ravikumar & Kolter, "Certified Robustness to Label-Flipping
Attacks via Randomized Smoothing", ICML 2020, arXiv:2002.03018). The smoothed classifier predicts the majority
class of a base classifier trained on labels each flipped independently with probability q. Its closed form
holds where the base classifier's decision is LINEAR IN THE TRAINING LABELS: least squares (ridge) on fixed
features, f(x) = beta(x) . y, beta(x) = Phi (Phi^T Phi + lambda I)^{-1} phi(x), predicting 1 when f(x) >= 1/2
(``ridge_coefficients``; kernel ridge the same with a kernel). Then P(f(x) >= 1/2) under the label noise is
bounded by a Chernoff bound (``smoothed_prediction``), no sampling, and the number of flips certified follows
from the Neyman-Pearson argument for the binary flip noise (``smoothing_radius``). It applies to the ridge
regression on the states (the logistic control's features) and to kernel ridge with the fidelity kernel
|<x|x'>|^2 (a quadratic form of the state: the QNN's model class). It does NOT apply to models trained by
gradient descent on a non-convex loss (the QNN, the MLP, the quadratic control, logistic regression itself): their
trained decision is no closed-form function of the labels, and a sampled smoothing would need thousands of
trainings per certificate; for them DPA is the certificate.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import optimize, stats


def hash_partition(x: np.ndarray, k: int) -> np.ndarray:
    """(N,) int partition of each row of ``x`` in 0 .. k-1: the first 8 bytes of the SHA-256 of the row's bytes
    (as stored: its dtype and values), mod k. Deterministic, and a function of the input alone."""
    x = np.ascontiguousarray(np.asarray(x))
    return np.array([int.from_bytes(hashlib.sha256(row.tobytes()).digest()[:8], "little") % int(k) for row in x],
                    np.int64)


def dpa_certificate(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``votes`` (k, M): each partition model's predicted class (0/1) of M points. Returns (the ensemble's
    prediction (M,), the certified number of flips (M,)): the module docstring's formula, ties to class 0."""
    votes = np.asarray(votes).astype(int)
    ones = votes.sum(axis=0)
    zeros = votes.shape[0] - ones
    prediction = (ones > zeros).astype(int)  # a tie goes to class 0
    top, other = np.where(prediction == 1, ones, zeros), np.where(prediction == 1, zeros, ones)
    gap = top - other - (prediction == 1)  # the runner-up (class 0) wins ties against class 1
    return prediction, np.floor_divide(gap, 2)


def certified_accuracy(prediction: np.ndarray, certified: np.ndarray, y: np.ndarray, radii) -> np.ndarray:
    """Fraction of points predicted correctly AND certified for at least r flips, for each r of ``radii``."""
    right = np.asarray(prediction) == np.asarray(y)
    certified = np.asarray(certified)
    return np.array([np.mean(right & (certified >= r)) for r in radii])


def ridge_coefficients(phi_train: np.ndarray, phi_eval: np.ndarray, ridge: float) -> np.ndarray:
    """(M, N) beta with f(x_m) = beta[m] . y: ridge regression of the labels on features ``phi_train`` (N, F),
    evaluated at ``phi_eval`` (M, F) (real features; complex ones as real and imaginary parts)."""
    a, b = _real(phi_train), _real(phi_eval)
    return kernel_coefficients(a @ a.T, b @ a.T, ridge)


def kernel_coefficients(k_train: np.ndarray, k_eval: np.ndarray, ridge: float) -> np.ndarray:
    """(M, N) beta = K_eval (K_train + ridge I)^{-1}: kernel ridge regression of the labels (the dual form of
    ``ridge_coefficients``), K_train (N, N) and K_eval (M, N) the kernel's values."""
    k_train = np.asarray(k_train, np.float64)
    return np.linalg.solve(k_train + ridge * np.eye(len(k_train)), np.asarray(k_eval, np.float64).T).T


def _real(phi):
    phi = np.asarray(phi)
    return np.concatenate([phi.real, phi.imag], axis=1) if np.iscomplexobj(phi) else phi.astype(np.float64)


def _log_tail(beta: np.ndarray, y: np.ndarray, q: float, sign: float) -> float:
    """log of the Chernoff bound on P(sign (f - 1/2) <= 0), f = beta . y~, y~_i = y_i flipped with prob. q."""
    def log_bound(t):
        # E exp(-t sign (f - 1/2)) = exp(t sign / 2) prod_i ((1 - q) e^{-t s beta_i y_i} + q e^{-t s beta_i (1 - y_i)})
        keep = -t * sign * beta * y
        flip = -t * sign * beta * (1 - y)
        return t * sign / 2 + np.sum(np.logaddexp(np.log1p(-q) + keep, np.log(q) + flip))

    result = optimize.minimize_scalar(log_bound, bounds=(0.0, 1e4), method="bounded")
    return min(0.0, float(result.fun))


def smoothed_prediction(beta: np.ndarray, y: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``beta`` (M, N): the smoothed classifier's class under label noise q and a lower bound
    on its probability (Chernoff: 1 - the bound on the other side's tail; 0.5 where nothing is certain).
    The class is the side whose tail bound is smaller (exact f of the clean labels breaks a tie)."""
    y = np.asarray(y, float)
    classes, lower = [], []
    for b in np.asarray(beta):
        against_one = np.exp(_log_tail(b, y, q, +1.0))   # bound on P(f < 1/2)
        against_zero = np.exp(_log_tail(b, y, q, -1.0))  # bound on P(f >= 1/2)
        c = 1 if against_one < against_zero or (against_one == against_zero and b @ y >= 0.5) else 0
        classes.append(c)
        lower.append(max(0.5, 1 - (against_one if c == 1 else against_zero)))
    return np.array(classes), np.array(lower)


def smoothing_radius(p_lower: float, q: float, max_flips: int = 10_000) -> int:
    """The most training-label flips r under which the smoothed classifier of flip noise q (< 1/2) keeps a
    class of probability >= ``p_lower`` (> 1/2) under the clean labels: the largest r for which every set A of
    label vectors with P(A) >= p_lower has P'(A) > 1/2, P' the noise around labels differing in r places.
    Neyman-Pearson: on those r coordinates the count k of noisy labels agreeing with the clean ones is
    Binomial(r, 1 - q) under P and Binomial(r, q) under P'; the likelihood ratio P'/P = (q / (1 - q))^(2k - r)
    falls with k, so the worst A takes the largest k first. -1 where even r = 0 is not certified."""
    if not p_lower > 0.5:
        return -1
    r = 0
    while r < max_flips and _worst_case(p_lower, q, r + 1) > 0.5:
        r += 1
    return r


def _worst_case(p: float, q: float, r: int) -> float:
    """min P'(A) over sets A of P-measure p (``smoothing_radius``)."""
    ks = np.arange(r, -1, -1)  # the largest agreement count first
    under_p = stats.binom.pmf(ks, r, 1 - q)
    under_shift = stats.binom.pmf(ks, r, q)
    filled, mass = 0.0, 0.0
    for a, b in zip(under_p, under_shift):
        if filled + a >= p:
            return mass + b * (p - filled) / a if a > 0 else mass
        filled += a
        mass += b
    return mass


def partition_streams(partition: np.ndarray, k: int) -> np.ndarray:
    """(k, N) bool: row j marks the samples of partition j (the stream replica j trains on)."""
    return np.asarray(partition)[None, :] == np.arange(int(k))[:, None]
