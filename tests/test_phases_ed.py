"""Exact diagonalisation of the transverse-field Ising and cluster-Ising rings (qrobust.data.tfim, .cluster).

The truths are independent of the library: Hamiltonians rebuilt as dense matrices from Kronecker
products of Pauli matrices, the Jordan-Wigner formula, the CZ duality and known limits.
"""

from functools import reduce

import numpy as np
import pytest

from qrobust.data import cluster, tfim
from qrobust.errors import ConfigError

I2 = np.eye(2)
X = np.array([[0.0, 1.0], [1.0, 0.0]])
Y = np.array([[0.0, -1j], [1j, 0.0]])
Z = np.diag([1.0, -1.0])


def pauli(n, ops):
    """The dense operator of a Pauli string {site: 2x2 matrix} on n qubits, qubit 0 the leftmost factor."""
    return reduce(np.kron, [ops.get(q, I2) for q in range(n)])


def dense_tfim(n, h):
    return -sum(pauli(n, {i: Z}) @ pauli(n, {(i + 1) % n: Z}) + h * pauli(n, {i: X}) for i in range(n))


def dense_cluster(n, h):
    return -sum(pauli(n, {(i - 1) % n: Z, i: X, (i + 1) % n: Z}) + h * pauli(n, {i: X}) for i in range(n))


def check_eigenstate(H, energy, psi):
    assert psi.dtype == np.complex128 and psi.shape == (H.shape[0],)
    assert abs(np.linalg.norm(psi) - 1) < 1e-12
    assert abs(np.vdot(psi, H @ psi).real - energy) < 1e-9
    assert np.linalg.norm(H @ psi - energy * psi) < 1e-9


def check_phase(psi):
    magnitude = np.abs(psi)
    k = int(np.argmax(magnitude >= magnitude.max() * (1 - 1e-9)))  # the first of the (near-)largest
    assert psi[k].imag == 0 and psi[k].real > 0


# --- transverse-field Ising ------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [4, 6])
def test_tfim_matches_dense_diagonalisation(n):
    parity = pauli(n, {q: X for q in range(n)})
    pw, pv = np.linalg.eigh(parity)
    even = pv[:, pw > 0]  # an orthonormal basis of P = +1
    for h in [0.0, 0.2, 0.5, 0.9, 1.0, 1.7, 3.0]:
        H = dense_tfim(n, h)
        energy, psi = tfim.ground_state(n, h)
        assert abs(energy - np.linalg.eigvalsh(even.T @ H @ even)[0]) < 1e-9  # lowest level with P = +1
        assert abs(energy - np.linalg.eigvalsh(H)[0]) < 1e-9  # which is the ground level of the ring
        check_eigenstate(H, energy, psi)
        assert abs(np.vdot(psi, parity @ psi) - 1) < 1e-12


def test_tfim_picks_the_even_member_of_the_near_degenerate_pair():
    n, h = 6, 0.3
    w = np.linalg.eigvalsh(dense_tfim(n, h))
    assert w[1] - w[0] < 1e-2  # the Z2 pair, hard to separate on the full space
    _, psi = tfim.ground_state(n, h)
    np.testing.assert_allclose(psi, psi[::-1], atol=1e-12)  # prod X flips every bit: index -> 2**L - 1 - index


def test_tfim_h0_is_ghz_plus():
    energy, psi = tfim.ground_state(8, 0.0)
    expected = np.zeros(2**8)
    expected[[0, -1]] = 2**-0.5
    assert energy == pytest.approx(-8.0, abs=1e-12)
    np.testing.assert_allclose(psi, expected, atol=1e-12)


@pytest.mark.parametrize("n", range(2, 13))
def test_tfim_free_fermion_energy(n):
    for h in [0.0, 0.4, 1.0, 2.5]:
        assert abs(tfim.ground_state(n, h)[0] - tfim.free_fermion_energy(n, h)) < 1e-9


def test_tfim_order_parameter():
    n = 8
    values = [tfim.order_parameter(tfim.ground_state(n, h)[1], n) for h in [0.0, 0.5, 1.0, 2.0, 1e4]]
    assert values[0] == pytest.approx(1.0, abs=1e-12)
    assert values[0] > values[1] > values[2] > values[3] > values[4]
    assert values[4] == pytest.approx(1 / n, abs=1e-4)  # corrections O(1/h)
    # against the dense operator (sum_i Z_i / L)**2
    m = sum(pauli(6, {i: Z}) for i in range(6)) / 6
    _, psi = tfim.ground_state(6, 0.7)
    assert tfim.order_parameter(psi, 6) == pytest.approx(np.vdot(psi, m @ m @ psi).real, abs=1e-12)


def test_tfim_large_ring_is_consistent():
    n, h = 14, 0.5  # Lanczos path (sector dimension 8192)
    energy, psi = tfim.ground_state(n, h)
    assert abs(energy - tfim.free_fermion_energy(n, h)) < 1e-9
    check_phase(psi)
    np.testing.assert_allclose(psi, psi[::-1], atol=1e-12)


# --- cluster-Ising ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [4, 6])
def test_cluster_matches_dense_diagonalisation(n):
    for h in [0.0, 0.3, 0.8, 1.0, 1.5, 3.0]:
        H = dense_cluster(n, h)
        w = np.linalg.eigvalsh(H)
        assert w[1] - w[0] > 0.1  # unique, gapped ground state
        energy, psi = cluster.ground_state(n, h)
        assert abs(energy - w[0]) < 1e-9
        check_eigenstate(H, energy, psi)


@pytest.mark.parametrize("n", [4, 8, 12])
def test_cluster_h0_is_the_cluster_state(n):
    energy, psi = cluster.ground_state(n, 0.0)
    assert energy == pytest.approx(-n, abs=1e-10)
    assert cluster.order_parameter(psi, n) == pytest.approx(1.0, abs=1e-10)
    np.testing.assert_allclose(np.abs(psi) ** 2, 2.0**-n, atol=1e-12)  # a stabiliser state, flat in Z


@pytest.mark.parametrize("n", [6, 8, 10])
def test_cluster_self_duality(n):
    for h in [0.5, 0.8]:
        assert abs(cluster.ground_state(n, h)[0] - h * cluster.ground_state(n, 1 / h)[0]) < 1e-9


def test_cluster_is_two_ising_rings():
    for n in [4, 6, 8, 10, 12]:
        for h in [0.0, 0.4, 1.0, 2.2]:
            assert abs(cluster.ground_state(n, h)[0] - 2 * tfim.ground_state(n // 2, h)[0]) < 1e-9


def test_cluster_string_order():
    n = 6  # against the dense string (-1)^{L/2} Z_0 Y_1 X_2 Y_3 Z_4
    string = -pauli(n, {0: Z, 1: Y, 2: X, 3: Y, 4: Z})
    for h in [0.3, 1.0]:
        _, psi = cluster.ground_state(n, h)
        assert cluster.order_parameter(psi, n) == pytest.approx(np.vdot(psi, string @ psi).real, abs=1e-12)
    values = [cluster.order_parameter(cluster.ground_state(12, h)[1], 12) for h in [0.0, 0.5, 1.0, 3.0]]
    assert values[0] > values[1] > values[2] > values[3]
    assert abs(values[3]) < 0.05


def test_canonical_phase():
    for model, n in [(tfim, 6), (tfim, 14), (cluster, 6), (cluster, 14)]:
        for h in [0.0, 0.5, 2.0]:
            _, psi = model.ground_state(n, h)
            check_phase(psi)
            np.testing.assert_array_equal(psi, model.ground_state(n, h)[1])  # reproducible
    v = tfim.canonical_phase(np.array([0.1, -0.5j, 0.5j, 0.2]))  # a tie: the first becomes positive
    np.testing.assert_allclose(v, [0.1j, 0.5, -0.5, 0.2j])


# --- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, h, match", [
    (1, 0.5, "number of spins"), (21, 0.5, "number of spins"), (4.0, 0.5, "integer"), (True, 0.5, "integer"),
    (4, -0.1, "finite and >= 0"), (4, float("nan"), "finite"), (4, float("inf"), "finite"), (4, "x", "number"),
])
def test_tfim_bad_input(n, h, match):
    with pytest.raises(ConfigError, match=match):
        tfim.ground_state(n, h)
    if n != 21:  # the free-fermion formula has no upper limit on L
        with pytest.raises(ConfigError, match=match):
            tfim.free_fermion_energy(n, h)


@pytest.mark.parametrize("n, h, match", [
    (5, 0.5, "even number"), (2, 0.5, "even number"), (22, 0.5, "even number"), (3, 0.5, "even number"),
    (6, -1.0, "finite and >= 0"), (6, float("nan"), "finite"), (6, float("-inf"), "finite"),
])
def test_cluster_bad_input(n, h, match):
    with pytest.raises(ConfigError, match=match):
        cluster.ground_state(n, h)


def test_order_parameter_bad_input():
    with pytest.raises(ConfigError, match="shape"):
        tfim.order_parameter(np.ones(8), 4)
    with pytest.raises(ConfigError, match="even number"):
        cluster.order_parameter(np.ones(32), 5)
