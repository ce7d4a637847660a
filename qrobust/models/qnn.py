"""The QNN: ``qnn``, the one front door for every circuit, simulated as statevectors in JAX.

A QNN is a circuit (``qrobust.models.circuit``: an ansatz written once in TensorCircuit's gates,
``qrobust.models.ansatze``; a user's own function is one more) at L qubits and depth d, an encoding of the
input, and a readout: logit = readout_scale * <Z_measured>, so p(y = 1) = sigmoid(5 <Z_{L-1}>) with the
paper's scale and qubit. The paper's circuit, "hea": every layer applies RX(a) RY(b) RX(c) to each qubit, then
RZZ(e) on every ring pair (i, i+1 mod L); parameters (d, L, 4); the input state is the amplitude vector (qubit
0 = most significant bit).

Which simulator runs it is asked of one registry (``qrobust.models.simulators``), which knows what each can
run: the C++ kernels ("native" for "hea", "native-gates" for any circuit of one- and two-qubit gates), XLA's
batched products ("blocks", "hea" on an accelerator) and gate contractions ("xla-gates"), TensorCircuit itself
("tc-fused", "tc-gates"). All agree to 1e-10 in complex128 with an independent numpy statevector (tests); the
native kernels (complex64 only) to float32 rounding, about 1e-6. ``forward_flops`` and ``training_flops`` count
the arithmetic of the paper's circuit, for the benchmarks.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp

from qrobust import sharding
from qrobust.backend import check_dtype, real_dtype
from qrobust.data.encoding import qubits_for_length
from qrobust.errors import ConfigError
from qrobust.models import native, simulators
from qrobust.models.ansatze import Ansatz, ansatz as library_ansatz
from qrobust.models.base import Model, SimOptions
from qrobust.models.blocks import PRECISIONS, Layout
from qrobust.models.circuit import Circuit
from qrobust.models.hea import cones, light_cone, ring_zz_signs, rotation_matrix
from qrobust.models.noise import Noise, layer_problem, parse as parse_noise
from qrobust.models.shots import SHOT_GRADIENTS, check_shots, sampled, shift_problem

_LIBRARY_SHIFT = ("hea", "rxry_cnot", "hea_cz", "reupload")  # every parameter in one Pauli rotation (ansatze.py)

SIMULATORS = simulators.SIMULATORS
__all__ = ["qnn", "choose_simulator", "check_simulator", "forward_flops", "training_flops", "SIMULATORS",
           "light_cone", "ring_zz_signs", "rotation_matrix"]

log = logging.getLogger("qrobust")


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


def choose_simulator(circuit: Circuit, dtype: str, *, forward_mode: bool = False) -> tuple[str, dict]:
    """The simulator ``qnn`` uses when none is named: the first of ``simulators.PREFERENCE`` that the registry
    says can run ``circuit`` here, and {name: why not} for those passed over. Where "native" would have run but
    its kernel cannot be built or loaded, the reason is logged once per process (the fallback is never silent)."""
    name, passed_over = simulators.choose(circuit, dtype=dtype, on_accelerator=not sharding.cpu_only(),
                                          forward_mode=forward_mode)
    reason = passed_over.get("native")
    if reason is not None and reason == native.unavailable_reason():
        native._warn_fallback(reason)
    return name, passed_over


def check_simulator(simulator: str, circuit: Circuit, dtype: str, *, forward_mode: bool = False) -> None:
    """Refuse, naming the reason, a simulator the registry says cannot run ``circuit`` here (NativeUnavailable
    where the native kernel cannot be built or loaded)."""
    if simulator not in SIMULATORS:
        raise ConfigError(f"unknown simulator {simulator!r}; choose from {', '.join(SIMULATORS)}")
    reason = simulators.why_not(simulator, circuit, dtype=dtype, on_accelerator=not sharding.cpu_only(),
                                forward_mode=forward_mode)
    if reason is None:
        return
    if simulator in ("native", "native-gates") and reason == native.unavailable_reason():
        raise native.NativeUnavailable(reason)
    raise ConfigError(f"simulator {simulator!r} cannot run this QNN: {reason}")


def qnn(
    n_qubits: int,
    depth: int = 1,
    *,
    ansatz: str | Ansatz | object = "hea",
    n_params: int | None = None,
    encoding: str = "amplitude",
    n_features: int | None = None,
    measured: int | None = None,
    readout_scale: float = 5.0,
    init_std: float = 0.01,
    dtype: str = "complex64",
    simulator: str | None = None,
    contractor: str | None = None,
    block_size: int = 5,
    light_cone_pruning: bool = True,
    matmul_precision: str = "highest",
    forward_mode: bool = False,
    noise: "str | Noise | None" = None,
    shots: int | None = None,
    shot_gradient: str = "shift",
) -> Model:
    """A QNN as a Model: the one front door for the paper's circuits, the library's and a user's own.

    Args:
      n_qubits: L, qubits of the circuit (amplitude-encoded inputs have length 2**L).
      depth: d, number of layers (a user's function that takes no depth ignores it).
      ansatz: a name of the library (``qrobust.models.ansatze``: "hea", the paper's, default; "rxry_cnot",
        "hea_cz", "reupload"), an ``Ansatz``, or a function ``fn(c, params, x)`` writing TensorCircuit gates on
        ``c`` (then ``n_params``, the length of its flat parameter vector, is required).
      encoding: "amplitude" (the input is the initial state), "angle" (features as RY angles on |0...0>),
        "reupload" (the ansatz loads the features itself); n_features: the features' length (default L).
      measured: the qubit read out (default the last); logit = readout_scale * <Z_measured>.
      init_std: parameters are drawn from N(0, init_std**2), in the ansatz's shape ((d, L, 4) for "hea").
      dtype: "complex64" (default) or "complex128" (needs JAX 64-bit mode).
      simulator: a name of ``qrobust.models.simulators`` (module docstring). None: ``choose_simulator``, the
        first that can run this circuit here ("native" for "hea" on CPU, "native-gates" for other circuits of
        one- and two-qubit gates, "blocks" for "hea" on a GPU, ...). A named simulator that cannot run the
        circuit is refused with the reason, never replaced. The choice, and why faster ones could not run it,
        are in ``settings`` ("simulator", "simulator_reason").
      contractor: TensorCircuit's contractor for "tc-fused" and "tc-gates" (default TensorCircuit's own;
        "cotengra" is what the paper's code uses).
      block_size: qubits per fused single-qubit block of "blocks" and "tc-fused" (2**block_size matrices).
      light_cone_pruning: the structured kernels leave out gates that cannot reach the measured qubit (exact).
      matmul_precision: precision of the "blocks" products: "highest" (default: full float32 in complex64) or
        "tf32" (TensorFloat-32 products on a GPU that has them: faster, about 1e-3 relative error per product;
        the same as "highest" on CPU). See ``qrobust.models.blocks``.
      forward_mode: the model must support forward mode (``jax.jvp``, as Hessian-vector products do): the
        default simulator is then one that has it, and one that has not is refused.
      noise: gate and readout noise (``qrobust.models.noise``): a ``Noise`` or its label, "depolarizing:0.01",
        "amplitude_damping:0.01+depolarizing2:0.02+readout:0.02", "depolarizing@layer:0.01" (once per layer on
        every qubit; a layer ends at each ``c.barrier_instruction()``); None / "none": exact. A circuit with gate
        noise runs on "heisenberg"; readout error alone, a factor (1 - 2p) on <Z>, on the exact simulators.
      shots: None (exact outputs) or N: the engine trains on and records N-shot estimates of each output, with
        the parameter-shift gradient at N shots per term (``qrobust.models.shots``); ``apply`` stays exact.
      shot_gradient: "shift" (exact sampling of every shifted term, the default) or "gaussian" (the exact
        gradient plus Gaussian noise of the per-term variance bound; one gradient's cost).
    """
    circuit = _circuit(n_qubits, depth, ansatz, n_params, encoding, n_features, measured, readout_scale,
                       light_cone_pruning)._replace(noise=parse_noise(noise))
    shots = check_shots(shots)
    check_dtype(dtype)
    if not 1 <= block_size <= 8:
        raise ConfigError(f"block_size must be between 1 and 8, got {block_size}")
    passed_over = None
    if simulator is None:
        simulator, passed_over = choose_simulator(circuit, dtype, forward_mode=forward_mode)
    check_simulator(simulator, circuit, dtype, forward_mode=forward_mode)
    _check_options(simulator, contractor, matmul_precision)
    layers = layer_problem(circuit, dtype)
    if layers is not None:
        raise ConfigError(layers)
    apply, apply_batch = simulators.build(simulator, circuit, SimOptions(
        dtype=dtype, contractor=contractor, block_size=block_size, matmul_precision=matmul_precision,
        forward_mode=forward_mode))
    shape, rdt = circuit.param_shape, real_dtype(dtype)

    def init(key):
        return init_std * jax.random.normal(key, shape, rdt)

    settings = dict(kind="qnn", forward_mode=forward_mode, n_qubits=circuit.n_qubits, depth=circuit.depth,
                    ansatz=circuit.ansatz.name, n_params=circuit.n_params(), encoding=circuit.encoding,
                    n_features=None if circuit.encoding == "amplitude" else circuit.features,
                    measured=circuit.readout, readout_scale=readout_scale, init_std=init_std, dtype=dtype,
                    simulator=simulator, simulator_reason="; ".join(f"{k}: {v}" for k, v in passed_over.items())
                    if passed_over else None, contractor=contractor, block_size=block_size,
                    light_cone_pruning=light_cone_pruning, matmul_precision=matmul_precision)
    if not circuit.noise.exact:
        settings["noise"] = circuit.noise.label
    sample = None
    if shots is not None:
        sample = _shots(circuit, init, apply, apply_batch, shots, shot_gradient, dtype)
        settings.update(shots=shots, shot_gradient=shot_gradient)
    prepare = _prepare(circuit, dtype, keep_real=simulator == "heisenberg")
    return Model(name="qnn", init=init, apply=apply, prepare=prepare, input_shape=(circuit.input_width,),
                 settings=settings, apply_batch=apply_batch, sample=sample)


def _shots(circuit: Circuit, init, apply, apply_batch, shots: int, gradient: str, dtype: str):
    """The model's ``sample``: N-shot logits with the parameter-shift gradient estimate (``qrobust.models.shots``);
    a user's circuit whose gradient the shift rule does not give is refused for "shift"."""
    if gradient not in SHOT_GRADIENTS:
        raise ConfigError(f"unknown shot_gradient {gradient!r}; choose from {', '.join(SHOT_GRADIENTS)}")
    logits_of = apply_batch if apply_batch is not None else jax.vmap(apply, in_axes=(None, 0))
    if gradient == "shift" and circuit.ansatz.name not in _LIBRARY_SHIFT:
        params, x = circuit.probe(dtype)
        reason = shift_problem(logits_of, jnp.reshape(params, circuit.param_shape),
                               _prepare(circuit, dtype)(jnp.asarray(x)[None]))
        if reason is not None:
            raise ConfigError(f"shots with shot_gradient='shift' on the {circuit.ansatz.name!r} circuit: {reason}")
    return sampled(logits_of, shots, circuit.readout_scale, gradient)


def _circuit(n_qubits, depth, ansatz, n_params, encoding, n_features, measured, readout_scale,
             light_cone_pruning) -> Circuit:
    """The checked Circuit of ``qnn``'s arguments (a user's function becomes an Ansatz of ``n_params``)."""
    if isinstance(ansatz, (str, Ansatz)):
        if n_params is not None:
            raise ConfigError("n_params is for a circuit given as a function; an Ansatz knows its parameters")
        a = library_ansatz(ansatz)
    elif callable(ansatz):
        if n_params is None:
            raise ConfigError("a circuit given as a function needs n_params, the length of its parameter vector")
        a = Ansatz.from_function(getattr(ansatz, "__name__", "circuit"), ansatz, n_params)
    else:
        raise ConfigError(f"an ansatz is a name, an Ansatz or a function (c, params, x), got {type(ansatz).__name__}")
    return Circuit(a, n_qubits, depth, encoding, n_features, measured, float(readout_scale),
                   bool(light_cone_pruning)).check()


def _check_options(simulator: str, contractor: str | None, matmul_precision: str) -> None:
    if contractor == "cotengra":
        import importlib.util

        if importlib.util.find_spec("cotengra") is None:
            raise ConfigError("contractor='cotengra' needs the cotengra package: pip install 'qrobust[cotengra]'")
    if contractor is not None and simulator not in ("tc-fused", "tc-gates"):
        raise ConfigError("a TensorCircuit contractor applies to the 'tc-fused' and 'tc-gates' simulators only")
    if matmul_precision not in PRECISIONS:
        raise ConfigError(f"unknown matmul_precision {matmul_precision!r}; choose from {', '.join(PRECISIONS)}")
    if matmul_precision != "highest" and simulator != "blocks":
        raise ConfigError(f"matmul_precision applies to the 'blocks' simulator only, not {simulator!r}")


def _prepare(circuit: Circuit, dtype: str, keep_real: bool = False):
    """``prepare(inputs)``: amplitude vectors (..., 2**L) as ``dtype``, or feature vectors (..., F) as its real
    dtype (numpy or jax input). ``keep_real``: real amplitude vectors stay real (as ``dtype``'s real part), for a
    simulator whose outputs are then real quadratic forms ("heisenberg": x^T Re(O) x, a quarter of the complex
    form's arithmetic)."""
    width = circuit.input_width
    amplitude = circuit.encoding == "amplitude"
    target = (jnp.complex128 if dtype == "complex128" else jnp.complex64) if amplitude else real_dtype(dtype)

    def prepare(inputs):
        length = inputs.shape[-1] if getattr(inputs, "ndim", 0) else 0
        if length != width:
            if amplitude:
                qubits_for_length(length)  # names a non-power-of-two length first
                raise ConfigError(f"a {circuit.n_qubits}-qubit QNN needs inputs of length {width}, got shape "
                                  f"{inputs.shape}")
            raise ConfigError(f"this QNN ({circuit.encoding} encoding) takes inputs of length {width}, got shape "
                              f"{inputs.shape}")
        inputs = jnp.asarray(inputs)
        if keep_real and amplitude and not jnp.iscomplexobj(inputs):
            return inputs.astype(real_dtype(dtype))
        return inputs.astype(target)

    return prepare
