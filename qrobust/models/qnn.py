"""The paper's quantum neural network, simulated as statevectors in JAX.

The circuit (``qrobust.models.hea``): hardware-efficient, L qubits, depth d;
every layer applies RX(a) RY(b) RX(c) to each qubit, then RZZ(e) on every ring
pair (i, i+1 mod L); parameters (d, L, 4). The input state is the amplitude
vector (qubit 0 = most significant bit). Output logit = readout_scale *
<Z_{L-1}>, so p(y = 1) = sigmoid(5 <Z_{L-1}>) with the paper's scale. Gates
outside the backward light cone of the measured qubit are left out (exact).

Gates are fused (the "blocks" and "tc-fused" simulators): per layer, the three
rotations of each qubit are multiplied into one 2x2 matrix, the matrices of a
block of up to ``block_size`` neighbouring qubits are Kronecker-multiplied into
one 2**k x 2**k unitary, and the whole RZZ ring is ONE diagonal whose phases
are computed from the parameters.

Simulators (``simulator=``):
  "native"    (default for "hea" in complex64 with 5 to 20 qubits, on CPU
              devices, where a C++ compiler is found) the C++ kernel of
              ``qrobust.models.native``: one state at a time in cache, gate by
              gate, gradient by the adjoint method; reverse mode in the
              parameters only (no ``jax.jvp``, so Hessians use "blocks").
  "blocks"    (the default otherwise) a whole batch at once in the layout of
              ``qrobust.models.blocks``, where every fused block is one matrix
              product without transposes; 2x faster than "tc-fused" per
              replica on CPU, 2.2x slower than "native" (benchmarks/suite.py).
  "tc-fused"  TensorCircuit: the fused blocks as ``Circuit.any`` gates and the
              ring as one ``Circuit.diagonal``, per example (vmapped).
  "tc-gates"  TensorCircuit gate by gate (35 small gates per layer), as the
              paper's code builds it; with ``contractor="cotengra"`` as it
              contracts it. For cross-checks and benchmarks.
What each simulator can run (ansatzes, dtypes, qubits, accelerators, forward mode, whether it can be
used here) is declared in one registry, ``qrobust.models.simulators``; the default is the first of its
preference order that can run the QNN, and a fallback is logged with its reason.
All agree to 1e-10 in complex128 with an independent numpy statevector (tests);
"native" (complex64 only) to float32 rounding, about 1e-6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from qrobust import sharding
from qrobust.backend import check_dtype, real_dtype
from qrobust.data.encoding import qubits_for_length
from qrobust.errors import ConfigError
from qrobust.models import hea, native, simulators
from qrobust.models.base import Model, SimOptions
from qrobust.models.blocks import PRECISIONS, Layout
from qrobust.models.hea import ANSATZE, PARAMS_PER_QUBIT, cones, light_cone, ring_zz_signs, rotation_matrix

SIMULATORS = simulators.SIMULATORS
__all__ = ["qnn", "default_simulator", "check_simulator", "forward_flops", "training_flops", "ANSATZE",
           "SIMULATORS", "PARAMS_PER_QUBIT", "light_cone", "ring_zz_signs", "rotation_matrix"]










def default_simulator(n_qubits: int, dtype: str, ansatz: str, *, forward_mode: bool = False) -> str:
    """The simulator ``qnn`` uses when none is named: the first of ``simulators.PREFERENCE`` that the registry
    says can run this QNN here. Where "native" would have run but its kernel cannot be built or loaded, the
    reason is logged once per process (the fallback is never silent)."""
    name, passed_over = simulators.choose(n_qubits=n_qubits, dtype=dtype, ansatz=ansatz,
                                          on_accelerator=not sharding.cpu_only(), forward_mode=forward_mode)
    reason = passed_over.get("native")
    if reason is not None and reason == native.unavailable_reason():
        native._warn_fallback(reason)
    return name


def check_simulator(simulator: str, n_qubits: int, dtype: str, ansatz: str, *, forward_mode: bool = False) -> None:
    """Refuse, naming the reason, a simulator the registry says cannot run this QNN here (NativeUnavailable
    where the native kernel cannot be built or loaded)."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}; choose from {', '.join(SIMULATORS)}")
    reason = simulators.why_not(simulator, n_qubits=n_qubits, dtype=dtype, ansatz=ansatz,
                                on_accelerator=not sharding.cpu_only(), forward_mode=forward_mode)
    if reason is None:
        return
    if simulator == "native" and reason == native.unavailable_reason():
        raise native.NativeUnavailable(reason)
    raise ConfigError(f"simulator {simulator!r} cannot run this QNN: {reason}")


def forward_flops(n_qubits: int, depth: int, *, block_size: int = 5, light_cone_pruning: bool = True,
                  simulator: str = "blocks") -> int:
    """Real floating-point operations of one forward pass (one state), counted from the circuit.

    "blocks" (and the TensorCircuit simulators, which fuse the same way): a fused block of k qubits is a
    complex (2**k x 2**k) matrix on every amplitude: 2**k complex multiply-adds = 8 * 2**k real operations
    per amplitude. "native": each rotated qubit is one 2 x 2 complex gate, 28 operations per pair of
    amplitudes = 14 per amplitude. The RZZ ring (one diagonal) is a complex multiply, 6 per amplitude;
    <Z> is |psi|^2 times a sign, summed: 3 per amplitude. Matrices built from the parameters (per
    replica, not per sample) are not counted.
    """
    dim = 2**n_qubits
    rot_cone, pair_cone = cones(n_qubits, depth, light_cone_pruning)
    layout = Layout(n_qubits)
    total = 3 * dim
    for layer in range(depth):
        if simulator == "native":
            total += 14 * len(rot_cone[layer]) * dim
        else:
            total += sum(8 * 2 ** (last - first + 1) * dim for first, last in
                         layout.half_windows(rot_cone[layer], block_size))
        total += 6 * dim if pair_cone[layer] else 0
    return total


def training_flops(n_qubits: int, depth: int, *, block_size: int = 5, light_cone_pruning: bool = True,
                   simulator: str = "blocks") -> int:
    """Real operations of one training step per state: the forward pass and the gradient.

    Reverse mode through the "blocks" products costs about two more products per product: three forward
    passes. The "native" adjoint gradient redoes the forward pass, then per rotated qubit undoes three
    rotations on the state and the costate (6 x 14 per amplitude) and takes three overlaps (3 x 4); per
    ring it forms Im(conj(lambda) psi) (3), one overlap per pair (2) and undoes the ring on both (12).
    """
    fwd = forward_flops(n_qubits, depth, block_size=block_size, light_cone_pruning=light_cone_pruning,
                        simulator=simulator)
    if simulator != "native":
        return 3 * fwd
    dim = 2**n_qubits
    rot_cone, pair_cone = cones(n_qubits, depth, light_cone_pruning)
    backward = fwd + 2 * dim + sum(96 * len(rot_cone[layer]) * dim
                                   + ((15 + 2 * len(pair_cone[layer])) * dim if pair_cone[layer] else 0)
                                   for layer in range(depth))
    return fwd + backward




def qnn(
    n_qubits: int,
    depth: int,
    *,
    readout_scale: float = 5.0,
    init_std: float = 0.01,
    dtype: str = "complex64",
    simulator: str | None = None,
    contractor: str | None = None,
    block_size: int = 5,
    light_cone_pruning: bool = True,
    ansatz: str = "hea",
    matmul_precision: str = "highest",
    forward_mode: bool = False,
) -> Model:
    """The paper's QNN as a Model (see module docstring).

    Args:
      n_qubits: L, qubits of the input state (inputs have length 2**L).
      depth: d, number of layers.
      readout_scale: logit = readout_scale * <Z_{L-1}>.
      init_std: parameters are drawn from N(0, init_std**2).
      dtype: "complex64" (default) or "complex128" (needs JAX 64-bit mode).
      simulator: "native" (the C++ kernel), "native-gates" (the C++ kernel's gate list,
        every ansatz), "blocks" (batched matrix products), "tc-fused" (TensorCircuit with
        fused block gates) or "tc-gates" (TensorCircuit gate by gate, as the paper's code).
        None: ``default_simulator``, the first of ``simulators.PREFERENCE`` that can run it
        ("native" for "hea" and "native-gates" for "rxry_cnot" on CPU; else "blocks" for "hea"
        and "tc-fused" for "rxry_cnot", which are also the choices with ``forward_mode``).
      contractor: TensorCircuit's contractor for the "tc-*" simulators (default:
        TensorCircuit's own; "cotengra" is what the paper's code uses).
      block_size: qubits per fused single-qubit block (2**block_size matrices).
      light_cone_pruning: leave out gates that cannot reach the measured qubit
        (for the "hea" ansatz; the CNOT ring of "rxry_cnot" is applied whole).
      ansatz: "hea", the paper's main ansatz, parameters (d, L, 4); or
        "rxry_cnot", the paper's Hessian-study variant: per layer RX(a) RY(b) on
        every qubit, then CNOT(i, i+1 mod L) for i = 0, ..., L-1 in that order,
        parameters (d, L, 2).
      matmul_precision: precision of the "blocks" simulator's matrix products:
        "highest" (default: full float32 in complex64) or "tf32" (XLA's default on a
        GPU, TensorFloat-32 products where the hardware has them: faster there, about
        1e-3 relative error per product; the same as "highest" on CPU). See
        ``qrobust.models.blocks``.
      forward_mode: the model must support forward mode (``jax.jvp``, as Hessian-vector products do):
        the default simulator is then one that has it, and one that has not is refused.
    Which simulators can run which QNN is declared in one registry, ``qrobust.models.simulators``.
    """
    if n_qubits < 2:
        raise ConfigError(f"the QNN needs at least 2 qubits, got {n_qubits}")
    if depth < 1:
        raise ConfigError(f"the QNN needs depth >= 1, got {depth}")
    if not 1 <= block_size <= 8:
        raise ConfigError(f"block_size must be between 1 and 8, got {block_size}")
    check_dtype(dtype)
    if ansatz not in ANSATZE:
        raise ConfigError(f"unknown ansatz {ansatz!r}; choose from {', '.join(ANSATZE)}")
    if simulator is None:
        simulator = default_simulator(n_qubits, dtype, ansatz, forward_mode=forward_mode)
    check_simulator(simulator, n_qubits, dtype, ansatz, forward_mode=forward_mode)
    if contractor == "cotengra":
        import importlib.util

        if importlib.util.find_spec("cotengra") is None:
            raise ConfigError("contractor='cotengra' needs the cotengra package: pip install 'qrobust[cotengra]'")
    if contractor is not None and simulator in ("blocks", "native", "native-gates"):
        raise ConfigError("a TensorCircuit contractor applies to the 'tc-fused' and 'tc-gates' simulators only")
    if matmul_precision not in PRECISIONS:
        raise ConfigError(f"unknown matmul_precision {matmul_precision!r}; choose from {', '.join(PRECISIONS)}")
    if matmul_precision != "highest" and simulator != "blocks":
        raise ConfigError(f"matmul_precision applies to the 'blocks' simulator only, not {simulator!r}")
    L, d = n_qubits, depth
    light_cone_pruning = light_cone_pruning and ansatz == "hea"  # the CNOT ring of "rxry_cnot" is applied whole
    circuit = hea.plan(ansatz, L, d, readout_scale=readout_scale, light_cone_pruning=light_cone_pruning)
    apply, apply_batch = simulators.build(simulator, circuit, SimOptions(
        dtype=dtype, contractor=contractor, block_size=block_size, matmul_precision=matmul_precision))
    n_per_qubit = PARAMS_PER_QUBIT[ansatz]
    rdt = real_dtype(dtype)

    def init(key):
        return init_std * jax.random.normal(key, (d, L, n_per_qubit), rdt)

    dim = 2**L
    jdtype = jnp.complex128 if dtype == "complex128" else jnp.complex64

    def prepare(states):
        """(..., 2**L) amplitude vectors -> the same as ``dtype`` (numpy or jax input)."""
        length = states.shape[-1] if states.ndim else 0
        if length != dim:
            qubits_for_length(length)  # names a non-power-of-two length first
            raise ConfigError(f"a {L}-qubit QNN needs inputs of length {dim}, got shape {states.shape}")
        return jnp.asarray(states).astype(jdtype)

    return Model(
        name="qnn",
        init=init,
        apply=apply,
        prepare=prepare,
        input_shape=(dim,),
        settings=dict(kind="qnn", forward_mode=forward_mode, n_qubits=L, depth=d, readout_scale=readout_scale,
                      init_std=init_std, dtype=dtype, simulator=simulator, contractor=contractor, block_size=block_size,
                      light_cone_pruning=light_cone_pruning, ansatz=ansatz,
                      matmul_precision=matmul_precision),
        apply_batch=apply_batch,
    )
