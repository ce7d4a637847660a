"""Classical controls of the QNN ("Is it quantum?"): models that share the QNN's model class, or part of it,
without the circuit, each an entry of the model registry (``qrobust.models.registry``), trained beside the QNN
on the replica engine: ``SweepConfig(models=("qnn", "quadratic", "logistic", ...))``.

Why these. With amplitude encoding the input is the state rho_x = |x><x| of the unit amplitude vector x (real or
complex, length d = 2**L) and the QNN's logit is 5 <Z_{L-1}> = 5 Tr(M rho_x) = 5 x^dagger M x, with
M = U^dagger Z_{L-1} U Hermitian of spectrum +1 (d/2 times) and -1 (d/2 times), U the circuit. So the QNN is a
bounded quadratic form of the state whose matrix the circuit parametrises. If its resilience to label flips
comes from that model class, the controls below share it; if from the circuit, they do not.

The controls (registry name: what it computes; the factory of the same name here makes its ``ModelSpec``, its
keywords are the control's named options, recorded in config.json and in ``Model.settings``):

quadratic        logit = 5 x^dagger M x, M = Q diag(tanh s) Q^dagger. Q (d x r) is the orthonormal factor of the
                 QR decomposition of a free matrix A (d x r; real for real states, complex for complex ones), s a
                 free vector (r). The columns of Q are orthonormal for every A (Householder QR), so M's eigenvalues
                 are tanh(s_j) (and 0 on the complement of Q's span when r < d): ||M||_op = max_j |tanh s_j| <= 1
                 for every parameter value, by construction (no penalty, no estimate). The sign or phase of each
                 column of Q drops out of M. For real states a real A suffices: x^T M x = x^T Re(M) x, and Re(M) is
                 real symmetric with ||Re M|| <= ||M|| <= 1, so real and complex M give the same functions there.
                 Option ``rank`` r (default 32, capped at d; None: full rank d). Initial A, s ~ N(0, 1) entries
                 (a step of Adam at rate lr turns a column of Q by about lr radians, as it turns a QNN angle).
quadratic_pm1    the QNN's exact spectrum: M = 2 P - I, P = Q Q^dagger a projector of rank d/2 (Q: d x d/2 from the
                 QR of a free A), so x^dagger M x = 2 ||Q^dagger x||^2 - ||x||^2 and M has eigenvalues +1 and -1,
                 d/2 each, for every A. Its QR costs about d^3 per replica per step: refused above ``max_qubits``
                 (default 10, d = 1024) at build time (ConfigError naming the size).
logistic         logistic regression on what the MLP reads (``qrobust.models.mlp.classical_prepare``: x, or
                 Re x || Im x): logit = w . x + b, one Dense(1) (d or 2d weights + 1 bias; LeCun-normal w, b = 0).
mlp_wd           the paper's MLP (hidden (64, 16)) trained with AdamW (decoupled weight decay: each step also takes
                 lr * weight_decay * w off every weight, as PyTorch's AdamW). Option ``weight_decay`` (default
                 0.01: PyTorch's AdamW default, not tuned); the optimiser is registered in ``qrobust.optimizers``
                 as "adamw_wd<weight_decay>". Trained with the paper's MLP settings (family "mlp"): it is the MLP
                 with one change.
mlp_invariant    the paper's MLP on phase-invariant features: x times conj(x_k)/|x_k|, k the index of the largest
                 |x_k| (the first on ties), then Re || Im (real states: times sign(x_k), d features); e^{i phi} x
                 gives the same input, a relative phase does not. Family "mlp".
fidelity_kernel  f(x) = sum_i a_i |<x|x_i>|^2 + b, the x_i the dataset's CLEAN training states, closed over when
                 the model is built: the kernel's basis is never the corrupted inputs (under feature corruption a
                 replica trains on corrupted x, expanded on the clean x_i). (a, b) trained by the shared loop from
                 zeros. The kernel values are computed in ``prepare`` (the model reads the N kernel values of a
                 state), so a training step is a linear model's.
projected_kernel the same with k(x, x') = exp(-gamma sum_q ||rho_q(x) - rho_q(x')||_F^2), rho_q the one-qubit
                 reduced density matrices (qubit 0 the most significant bit, as the QNN's), Huang et al. 2021,
                 "Power of data in quantum machine learning", Nat. Commun. 12, 2631. Option ``gamma`` (default 1.0,
                 not tuned: sum_q ||.||_F^2 lies in [0, 2L], so kernel values spread over (0, 1] for states whose
                 marginals differ by O(1)). It sees one-qubit marginals only: where they are all I/2 (XXZ ground
                 states, zero magnetisation) every kernel value is 1 and it learns only its bias.
mlp_pca          the paper's MLP on the first ``n_components`` (default 10) principal components of the states,
                 fitted on the training set when the model is built, exactly as ``qrobust.data.features`` makes
                 the angle encoding's features (scikit-learn PCA of the classical view, centred, each component
                 scaled to [0, pi] by the training range, values outside it clipped): the MLP of an
                 ``--encoding angle --features 10`` run, on amplitude-encoded data. Family "mlp".

Training: every control is trained exactly as the QNN is (its ModelSpec's family "qnn": the QNN's paper epochs,
batch size, learning rate and Adam), except the three MLP variants, which take the paper's MLP settings (family
"mlp", their hidden sizes the sweep's ``hidden``). All read amplitude-encoded states: a dataset of angle or
reupload features is refused (ConfigError). The kernels and mlp_pca are built from the training states, so a
run directory's weights are read back with a model rebuilt from the run's dataset (``registry.build``), not
from programs.json's shapes alone (refused with that message).

Cost of one training step per replica against the QNN's, measured (not timed) from the compiled programs: real
operations from XLA's cost analysis of one step (forward, gradient, Adam), times 4 for complex arithmetic (XLA
counts a complex multiply-add as 2), plus the LAPACK calls XLA does not count (QR: 4 d r^2 - 4 r^3 / 3, its
gradient's triangular solve: d r^2; x4 complex); the QNN's from ``qnn.training_flops`` (the "blocks" count,
"native" in brackets). Memory: XLA's memory analysis of the sweep's own training program (``Program.footprint``),
per added replica, in MiB. (G = 1e9 operations.)

  MNIST 1v9, 10 qubits, d = 1024 real, batch 256      XXZ, 12 qubits, d = 4096 complex, batch 32
  qnn                   1.0 G (1.2)   4.5 MiB          qnn                 0.12 G (0.27)   2.9 MiB
  quadratic r = 32      0.04 G        3.5 MiB          quadratic r = 32    0.24 G          12.8 MiB
  quadratic r = 64      0.11 G        4.7 MiB          quadratic r = 64    0.78 G          22.5 MiB
  quadratic r = 256     0.86 G        12.1 MiB         quadratic r = 128   2.8 G           42.4 MiB
  quadratic r = d       9.3 G         41.7 MiB         quadratic r = d     ~2,100 G        1,265 MiB
  quadratic_pm1         2.8 G         22.0 MiB         quadratic_pm1       ~580 G          634 MiB (refused)
  logistic, kernels     < 0.002 G     <= 2.3 MiB       mlp (and variants)  0.07 G          22.7 MiB

So the default rank 32 costs at most about twice the QNN's operations (XXZ; a twentieth of them on MNIST) and
12.8 MiB per replica at 12 qubits (100 replicas with Adam: 1.3 GB); rank 64 would be 3 to 6 times the QNN at
12 qubits. quadratic_pm1 is about 3 times the QNN at 10 qubits and thousands of times at 12: refused above 10.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.backend import real_dtype
from qrobust.errors import ConfigError
from qrobust.models.base import Model, ModelSpec

CONTROLS = ("quadratic", "quadratic_pm1", "logistic", "mlp_wd", "mlp_invariant", "fidelity_kernel",
            "projected_kernel", "mlp_pca")
READOUT_SCALE = 5.0  # the QNN's: logit = 5 <Z>
DEFAULT_RANK = 32
PM1_MAX_QUBITS = 10
DEFAULT_WEIGHT_DECAY = 0.01  # PyTorch's AdamW default (optax's is 1e-4); not tuned
DEFAULT_GAMMA = 1.0
DEFAULT_COMPONENTS = 10
_FULL = jax.lax.Precision.HIGHEST  # full float32 products on a GPU too (its default there is TensorFloat-32)


# --- inputs ---------------------------------------------------------------------------------------------------


def _amplitude_input(dataset, name: str) -> tuple[int, bool]:
    """(d, complex) of ``dataset``'s amplitude-encoded states; a ConfigError where the control cannot read them."""
    encoding = dataset.meta.get("encoding", "amplitude")
    if encoding != "amplitude":
        raise ConfigError(f"the {name} control reads amplitude-encoded states (the QNN's x^dagger M x); this "
                          f"dataset's inputs are {encoding} features: use the amplitude encoding")
    x = np.asarray(dataset.x_train)
    if x.ndim != 2 or x.shape[1] != 2 ** int(dataset.n_qubits):
        raise ConfigError(f"the {name} control reads states of length 2**n_qubits = {2 ** int(dataset.n_qubits)}, "
                          f"got training inputs of shape {x.shape}")
    return int(x.shape[1]), bool(np.iscomplexobj(x))


def _training_states(dataset, name: str) -> np.ndarray:
    """The clean training states a data-built control closes over; refused where they are no states (the
    placeholder of zeros a run directory's shapes rebuild, ``RunResults.model``)."""
    x = np.asarray(dataset.x_train)
    norms = np.linalg.norm(x, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise ConfigError(f"the {name} control is built from the training states, and these are not unit vectors "
                          f"(norms {norms.min():.3g} to {norms.max():.3g}): build it from the run's dataset "
                          "(qrobust.models.registry.build(name, dataset, settings)), not from stored shapes")
    return x


def state_prepare(dim: int, complex_input: bool, dtype: str, name: str):
    """``prepare(states)``: states (..., dim) as the control's dtype (complex where the data are complex: real
    states are then cast; complex states for a real control are refused)."""
    target = (jnp.complex128 if dtype == "complex128" else jnp.complex64) if complex_input else real_dtype(dtype)

    def prepare(states):
        length = states.shape[-1] if getattr(states, "ndim", 0) else 0
        if length != dim or (jnp.iscomplexobj(states) and not complex_input):
            raise ConfigError(f"the {name} control reads {'complex' if complex_input else 'real'} states of length "
                              f"{dim}, got shape {getattr(states, 'shape', None)} ({getattr(states, 'dtype', None)})")
        return jnp.asarray(states).astype(target)

    return prepare


def _squared(y):
    """|y|^2 elementwise, with a gradient everywhere (also at 0)."""
    return jnp.real(y) ** 2 + jnp.imag(y) ** 2 if jnp.iscomplexobj(y) else y**2


def _linear_head(n_inputs: int, dtype) -> tuple:
    """(init, apply, apply_batch) of logit = w . k + b on ``n_inputs`` values, from zeros."""

    def init(key):
        return {"a": jnp.zeros((n_inputs,), dtype), "b": jnp.zeros((), dtype)}

    def apply_batch(params, ks):
        return jnp.matmul(ks, params["a"], precision=_FULL) + params["b"]

    return init, lambda params, k: apply_batch(params, k[None])[0], apply_batch


# --- quadratic forms ------------------------------------------------------------------------------------------


def orthonormal(params) -> jax.Array:
    """Q: the orthonormal factor of the QR decomposition of params["a"] (+ i params["a_imag"])."""
    a = params["a"] if "a_imag" not in params else jax.lax.complex(params["a"], params["a_imag"])
    return jnp.linalg.qr(a, mode="reduced")[0]


def quadratic_matrix(params) -> jax.Array:
    """M = Q diag(tanh s) Q^dagger of a quadratic control's ``params`` (d x d; for checks, not training)."""
    q = orthonormal(params)
    return jnp.matmul(q * jnp.tanh(params["s"]), q.conj().T, precision=_FULL)


def pm1_matrix(params) -> jax.Array:
    """M = 2 Q Q^dagger - I of a quadratic_pm1 control's ``params``."""
    q = orthonormal(params)
    return 2 * jnp.matmul(q, q.conj().T, precision=_FULL) - jnp.eye(q.shape[0], dtype=q.dtype)


def _free_matrix(key, dim: int, rank: int, complex_input: bool, rdt) -> dict:
    ka, kb = jax.random.split(key)
    params = {"a": jax.random.normal(ka, (dim, rank), rdt)}
    if complex_input:
        params["a_imag"] = jax.random.normal(kb, (dim, rank), rdt)
    return params


def _check_rank(rank, name: str) -> None:
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1):
        raise ConfigError(f"the {name} control's rank must be a positive integer (or None: full rank), got {rank!r}")


def quadratic_model(dim: int, *, complex_input: bool, rank: int | None = DEFAULT_RANK, dtype: str = "complex64",
                    name: str = "quadratic") -> Model:
    """The quadratic control (module docstring) on states of length ``dim``: logit = 5 x^dagger M x, M =
    Q diag(tanh s) Q^dagger, Q (dim x rank) orthonormal from a QR; rank None: ``dim``, larger: capped at ``dim``."""
    _check_rank(rank, name)
    r = dim if rank is None else min(int(rank), dim)
    rdt = real_dtype(dtype)

    def init(key):
        ka, ks = jax.random.split(key)
        return dict(_free_matrix(ka, dim, r, complex_input, rdt), s=jax.random.normal(ks, (r,), rdt))

    def apply_batch(params, xs):
        q = orthonormal(params)
        overlaps = _squared(jnp.matmul(xs, q.conj(), precision=_FULL))  # |q_j^dagger x|^2, (B, r)
        return READOUT_SCALE * jnp.matmul(overlaps, jnp.tanh(params["s"]), precision=_FULL)

    settings = dict(kind=name, rank=r, rank_option=None if rank is None else int(rank), complex=complex_input,
                    dim=dim, readout_scale=READOUT_SCALE)
    return Model(name=name, init=init, apply=lambda params, x: apply_batch(params, x[None])[0],
                 prepare=state_prepare(dim, complex_input, dtype, name), input_shape=(dim,), settings=settings,
                 apply_batch=apply_batch)


def quadratic_pm1_model(dim: int, *, complex_input: bool, dtype: str = "complex64", max_qubits: int = PM1_MAX_QUBITS,
                        name: str = "quadratic_pm1") -> Model:
    """The quadratic_pm1 control (module docstring): logit = 5 (2 ||Q^dagger x||^2 - ||x||^2), Q (dim x dim/2)
    orthonormal from a QR: M = 2 Q Q^dagger - I has eigenvalues +-1, dim/2 each. Refused above ``max_qubits``."""
    n_qubits = int(dim).bit_length() - 1
    if n_qubits > max_qubits:
        factor = 4 if complex_input else 1  # real operations per complex multiply-add, over a real one's
        qr_ops = (4 * dim * (dim // 2) ** 2 - 4 * (dim // 2) ** 3 / 3 + dim * (dim // 2) ** 2) * factor
        weights = dim * (dim // 2) * (2 if complex_input else 1)
        raise ConfigError(
            f"the {name} control at {n_qubits} qubits (d = {dim}) is refused: its projector is the QR of a {dim} x "
            f"{dim // 2} matrix, whose decomposition and gradient alone are about {qr_ops / 1e9:,.0f} G real "
            f"operations per replica per step (d^3; the QNN's whole step is about 1 G at 10 qubits), and it has "
            f"{weights:,} weights per replica ({weights * 16 / 2**20:,.0f} MiB with the gradient and Adam's "
            f"moments). It runs up to {max_qubits} qubits (d = {2**max_qubits}); quadratic_pm1(max_qubits="
            f"{n_qubits}) lifts the limit, or use the low-rank 'quadratic' control")
    if dim < 2:
        raise ConfigError(f"the {name} control needs d >= 2, got {dim}")
    rdt = real_dtype(dtype)

    def init(key):
        return _free_matrix(key, dim, dim // 2, complex_input, rdt)

    def apply_batch(params, xs):
        q = orthonormal(params)
        inside = jnp.sum(_squared(jnp.matmul(xs, q.conj(), precision=_FULL)), axis=-1)  # ||Q^dagger x||^2
        return READOUT_SCALE * (2 * inside - jnp.sum(_squared(xs), axis=-1))

    settings = dict(kind=name, rank=dim // 2, complex=complex_input, dim=dim, max_qubits=max_qubits,
                    readout_scale=READOUT_SCALE)
    return Model(name=name, init=init, apply=lambda params, x: apply_batch(params, x[None])[0],
                 prepare=state_prepare(dim, complex_input, dtype, name), input_shape=(dim,), settings=settings,
                 apply_batch=apply_batch)


# --- classical models on the classical view -------------------------------------------------------------------


def logistic_model(dim: int, *, complex_input: bool, name: str = "logistic") -> Model:
    """Logistic regression on the classical view (``classical_prepare``): logit = w . x + b, one Dense(1)."""
    from qrobust.models.mlp import classical_prepare

    features = 2 * dim if complex_input else dim

    def init(key):
        w = jax.nn.initializers.lecun_normal()(key, (features, 1), jnp.float32)[:, 0]  # Flax Dense's default
        return {"w": w, "b": jnp.zeros((), jnp.float32)}

    def apply_batch(params, xs):
        return jnp.matmul(xs, params["w"], precision=_FULL) + params["b"]

    return Model(name=name, init=init, apply=lambda params, x: apply_batch(params, x[None])[0],
                 prepare=classical_prepare(dim, complex_input), input_shape=(features,),
                 settings=dict(kind=name, input_features=features), apply_batch=apply_batch)


def adamw(weight_decay: float = DEFAULT_WEIGHT_DECAY):
    """The AdamW ``Optimizer`` of ``weight_decay``, registered in ``qrobust.optimizers`` as
    "adamw_wd<weight_decay>" (once per process): optax.adamw at the replica's learning rate."""
    import optax

    from qrobust import optimizers

    if not (isinstance(weight_decay, (int, float)) and 0 <= weight_decay < math.inf):
        raise ConfigError(f"weight decay must be a non-negative finite number, got {weight_decay!r}")
    name = f"adamw_wd{float(weight_decay):g}"
    try:
        return optimizers.get(name)  # made by an earlier call
    except ConfigError:
        optimizers.register(optimizers.Optimizer(
            name, lambda learning_rate: optax.adamw(learning_rate, weight_decay=float(weight_decay))))
        return optimizers.get(name)


def phase_fix(states):
    """``states`` (..., d) times conj(x_k)/|x_k|, k the index of each state's largest |amplitude| (the first on
    ties): the same for every global phase e^{i phi} x (real states: times the sign of x_k)."""
    states = jnp.asarray(states)
    k = jnp.argmax(jnp.abs(states), axis=-1)
    pivot = jnp.take_along_axis(states, k[..., None], axis=-1)
    size = jnp.abs(pivot)
    unit = jnp.where(size > 0, pivot / jnp.where(size > 0, size, 1), 1)
    return states * jnp.conj(unit)


def invariant_prepare(dim: int, complex_input: bool, name: str):
    """``prepare``: the classical view (``classical_prepare``) of ``phase_fix(states)``."""
    from qrobust.models.mlp import classical_prepare

    view = classical_prepare(dim, complex_input)

    def prepare(states):
        view(states)  # the shape and kind check, by name
        return view(phase_fix(jnp.asarray(states)))

    return prepare


def pca_transform(x_train: np.ndarray, n_components: int):
    """``transform(states) -> (..., n_components)``: ``qrobust.data.features``'s angle features (the classical
    view's principal components of ``x_train``, scaled to [0, pi] by the training range, clipped), for any states."""
    from sklearn.decomposition import PCA

    from qrobust.data.encoding import classical_view

    view = classical_view(x_train)
    if int(n_components) != n_components or not 1 <= n_components <= min(view.shape):
        raise ConfigError(f"mlp_pca needs 1 to {min(view.shape)} components (principal components of "
                          f"{view.shape[0]} training samples of {view.shape[1]} values), got {n_components}")
    pca = PCA(n_components=int(n_components), svd_solver="full").fit(view)
    mean, components = jnp.asarray(pca.mean_, jnp.float32), jnp.asarray(pca.components_.T, jnp.float32)
    f_train = pca.transform(view)
    lo, hi = f_train.min(axis=0), f_train.max(axis=0)
    lo, span = jnp.asarray(lo, jnp.float32), jnp.asarray(np.where(hi > lo, hi - lo, 1.0), jnp.float32)
    complex_input = bool(np.iscomplexobj(x_train))

    def transform(states):
        states = jnp.asarray(states)
        if complex_input:
            states = jnp.concatenate([states.real, states.imag], axis=-1)
        f = jnp.matmul(states.astype(jnp.float32) - mean, components, precision=_FULL)
        return jnp.pi * jnp.clip((f - lo) / span, 0.0, 1.0)

    return transform, np.round(pca.explained_variance_ratio_, 6).tolist()


# --- kernels --------------------------------------------------------------------------------------------------


def fidelity_features(states, basis) -> jax.Array:
    """|<x|x_i>|^2 of each state of ``states`` (..., d) with each row x_i of ``basis`` (N, d): (..., N)."""
    return _squared(jnp.matmul(jnp.asarray(states), jnp.conj(jnp.asarray(basis)).T, precision=_FULL))


def one_qubit_rdms(states) -> jax.Array:
    """rho_q = Tr_{not q} |x><x| of every qubit q (qubit 0 the most significant bit): (..., L, 2, 2)."""
    states = jnp.asarray(states)
    dim = states.shape[-1]
    n = int(dim).bit_length() - 1
    out = []
    for q in range(n):
        s = states.reshape(*states.shape[:-1], 2**q, 2, dim // 2 ** (q + 1))
        out.append(jnp.einsum("...iak,...ibk->...ab", s, jnp.conj(s), precision=_FULL))
    return jnp.stack(out, axis=-3)


def _rdm_vectors(states) -> jax.Array:
    """(..., 4 L) real vectors v with ||v(x) - v(x')||^2 = sum_q ||rho_q(x) - rho_q(x')||_F^2: per qubit
    (rho_00, rho_11, sqrt2 Re rho_01, sqrt2 Im rho_01)."""
    r = one_qubit_rdms(states)
    off = math.sqrt(2) * r[..., 0, 1]
    v = jnp.stack([jnp.real(r[..., 0, 0]), jnp.real(r[..., 1, 1]), jnp.real(off), jnp.imag(off)], axis=-1)
    return v.reshape(*v.shape[:-2], -1)


def projected_features(states, basis, gamma: float) -> jax.Array:
    """exp(-gamma sum_q ||rho_q(x) - rho_q(x_i)||_F^2) of each state (..., d) with each basis state x_i: (..., N)."""
    return _projected_against(basis, gamma)(states)


def _projected_against(basis, gamma: float):
    """``features(states)``: ``projected_features`` against ``basis``, its marginals computed once."""
    w = _rdm_vectors(basis)
    w2 = jnp.sum(w**2, axis=-1)

    def features(states):
        v = _rdm_vectors(states)
        dist = jnp.sum(v**2, axis=-1)[..., None] + w2 - 2 * jnp.matmul(v, w.T, precision=_FULL)
        return jnp.exp(-gamma * jnp.maximum(dist, 0.0))

    return features


def kernel_model(basis: np.ndarray, features_of, *, dtype: str = "complex64", name: str, settings: dict) -> Model:
    """f(x) = sum_i a_i k(x, x_i) + b over the rows x_i of ``basis``; ``features_of(basis)`` gives
    ``features(states)``, the kernel values (..., N), computed in ``prepare``; (a, b) from zeros."""
    dim, complex_input = basis.shape[1], bool(np.iscomplexobj(basis))
    rdt = real_dtype(dtype)
    states = state_prepare(dim, complex_input, dtype, name)
    n_basis = int(basis.shape[0])
    features = features_of(states(basis))

    def prepare(x):
        return features(states(x)).astype(rdt)

    init, apply, apply_batch = _linear_head(n_basis, rdt)
    return Model(name=name, init=init, apply=apply, prepare=prepare, input_shape=(n_basis,),
                 settings=dict(kind=name, n_basis=n_basis, dim=dim, complex=complex_input, **settings),
                 apply_batch=apply_batch)


# --- registry entries -----------------------------------------------------------------------------------------


def _spec(name: str, build, *, family: str = "qnn", arch_axis: str | None = None, training: dict | None = None,
          options: dict | None = None):
    if not isinstance(name, str) or not name:
        raise ConfigError("a control needs a name (it is recorded with the results)")
    return ModelSpec(name, build, quantum=False, arch_axis=arch_axis, training=training, family=family,
                     options=options)


def quadratic(rank: int | None = DEFAULT_RANK, *, name: str = "quadratic"):
    """The quadratic control's ModelSpec (module docstring); ``rank``: Q's columns (None: full rank)."""
    _check_rank(rank, name)

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        return quadratic_model(dim, complex_input=complex_input, rank=rank, dtype=options.dtype, name=name)

    return _spec(name, build, options=dict(rank=None if rank is None else int(rank)))


def quadratic_pm1(*, max_qubits: int = PM1_MAX_QUBITS, name: str = "quadratic_pm1"):
    """The quadratic_pm1 control's ModelSpec (module docstring); refused above ``max_qubits`` when built."""

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        return quadratic_pm1_model(dim, complex_input=complex_input, dtype=options.dtype, max_qubits=max_qubits,
                                   name=name)

    return _spec(name, build, options=None if max_qubits == PM1_MAX_QUBITS else dict(max_qubits=max_qubits))


def logistic(*, name: str = "logistic"):
    """The logistic control's ModelSpec: one Dense(1) on the classical view, trained as the QNN."""

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        return logistic_model(dim, complex_input=complex_input, name=name)

    return _spec(name, build)


def _mlp_variant(settings, name: str, prepare, input_dim: int, complex_input: bool, **extra) -> Model:
    from qrobust.models.mlp import mlp

    model = mlp(input_dim, settings.hidden, complex_input=complex_input)
    return model._replace(name=name, prepare=prepare or model.prepare,
                          settings=dict(model.settings, kind=name, **extra))


def mlp_wd(weight_decay: float = DEFAULT_WEIGHT_DECAY, *, name: str = "mlp_wd"):
    """The mlp_wd control's ModelSpec: the paper's MLP with AdamW of ``weight_decay`` (module docstring)."""
    optimizer = adamw(weight_decay)

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        return _mlp_variant(settings, name, None, dim, complex_input, weight_decay=float(weight_decay),
                            optimizer=optimizer.name)

    return _spec(name, build, family="mlp", arch_axis="hidden", training=dict(optimizer=optimizer.name),
                 options=dict(weight_decay=float(weight_decay)))


def mlp_invariant(*, name: str = "mlp_invariant"):
    """The mlp_invariant control's ModelSpec: the paper's MLP on phase-fixed states (``phase_fix``)."""

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        return _mlp_variant(settings, name, invariant_prepare(dim, complex_input, name), dim, complex_input,
                            phase="conj(x_k)/|x_k|, k = argmax |x_k|")

    return _spec(name, build, family="mlp", arch_axis="hidden")


def mlp_pca(n_components: int = DEFAULT_COMPONENTS, *, name: str = "mlp_pca"):
    """The mlp_pca control's ModelSpec: the paper's MLP on ``n_components`` principal components (module
    docstring), fitted on the training states when built."""
    if int(n_components) != n_components or n_components < 1:
        raise ConfigError(f"mlp_pca needs a positive number of components, got {n_components}")

    def build(dataset, settings, options):
        dim, complex_input = _amplitude_input(dataset, name)
        transform, explained = pca_transform(_training_states(dataset, name), n_components)

        def prepare(states):
            length = states.shape[-1] if getattr(states, "ndim", 0) else 0
            if length != dim or (jnp.iscomplexobj(states) and not complex_input):
                raise ConfigError(f"{name} reads {'complex' if complex_input else 'real'} states of length {dim}, "
                                  f"got shape {getattr(states, 'shape', None)}")
            return transform(states)

        return _mlp_variant(settings, name, prepare, int(n_components), False,
                            n_components=int(n_components), explained_variance=explained)

    return _spec(name, build, family="mlp", arch_axis="hidden", options=dict(n_components=int(n_components)))


def fidelity_kernel(*, name: str = "fidelity_kernel"):
    """The fidelity_kernel control's ModelSpec: f(x) = sum_i a_i |<x|x_i>|^2 + b over the clean training states."""

    def build(dataset, settings, options):
        _amplitude_input(dataset, name)
        return kernel_model(_training_states(dataset, name), lambda basis: lambda x: fidelity_features(x, basis),
                            dtype=options.dtype, name=name,
                            settings=dict(kernel="|<x|x_i>|^2", basis="clean training states"))

    return _spec(name, build)


def projected_kernel(gamma: float = DEFAULT_GAMMA, *, name: str = "projected_kernel"):
    """The projected_kernel control's ModelSpec: one-qubit marginals' Gaussian kernel of ``gamma`` (module
    docstring) over the clean training states."""
    if not (isinstance(gamma, (int, float)) and 0 < gamma < math.inf):
        raise ConfigError(f"the projected kernel's gamma must be positive and finite, got {gamma!r}")

    def build(dataset, settings, options):
        _amplitude_input(dataset, name)
        return kernel_model(_training_states(dataset, name),
                            lambda basis: _projected_against(basis, float(gamma)), dtype=options.dtype,
                            name=name, settings=dict(gamma=float(gamma), basis="clean training states"))

    return _spec(name, build, options=dict(gamma=float(gamma)))


def specs() -> tuple:
    """The registry's controls at their default options, in ``CONTROLS`` order."""
    made = (quadratic(), quadratic_pm1(), logistic(), mlp_wd(), mlp_invariant(), fidelity_kernel(),
            projected_kernel(), mlp_pca())
    assert tuple(s.name for s in made) == CONTROLS
    return made
