"""The study skeleton: every study compiles each of its programs once, however many chunks it runs."""

import pytest
from jax import monitoring

from qrobust.experiments import LandscapeConfig, SweepConfig, UnlearnConfig, run_landscape, run_sweep, run_unlearning

_events = []
monitoring.register_event_duration_secs_listener(lambda name, duration, **kw: _events.append(name))

TINY = dict(dataset="xxz", n_qubits=4, models=("mlp",), seeds=(0, 1, 2, 3), n_train_per_class=4)
STUDIES = {  # the detection study runs the sweep's programs, with margins: the sweep covers it
    "sweep": (run_sweep, SweepConfig(**TINY, corruptions=("flip",), alphas=(0.5,), epochs=1)),
    "unlearning": (run_unlearning, UnlearnConfig(**TINY, methods=("finetune",), alpha=0.5, epochs=1,
                                                 teacher_epochs=1)),
    "landscape": (run_landscape, LandscapeConfig(**{**TINY, "n_train_per_class": None}, alphas=(0.0, 0.5),
                                                 epochs=1, n_eval=6, hutchinson_samples=2, lanczos_iter=2,
                                                 lanczos_k=1)),
}


@pytest.mark.parametrize("name", ["sweep", pytest.param("unlearning", marks=pytest.mark.slow),
                                  pytest.param("landscape", marks=pytest.mark.slow)])
def test_a_study_traces_its_programs_at_their_first_chunk_only(name, tmp_path, monkeypatch):
    """One replica per chunk, so each program runs 4 or more chunks of one shape: every function the study
    runs is traced (and so compiled) during the first chunk of its program and never again. (The landscape
    study rebuilt its training and measurement programs inside each chunk until the skeleton.)"""
    from dataclasses import replace

    from qrobust.experiments import chunks, detection, landscape, sweep, unlearning_stages, unlearning_students

    traced = []  # (program, functions traced while its chunk ran)
    real = chunks.run_chunks

    def counting(chunk_list, run, store, progress=None):
        def counted(chunk):
            before = len(_events)
            out = run(chunk)
            traced.append((chunk.program, sum(e == "/jax/core/compile/jaxpr_trace_duration"
                                              for e in _events[before:])))
            return out

        return real(chunk_list, counted, store, progress)

    for module in (sweep, unlearning_stages, unlearning_students, landscape, detection):
        monkeypatch.setattr(module, "run_chunks", counting)
    run, config = STUDIES[name]
    run(replace(config, chunk_size=1), tmp_path / "run", progress=False)
    programs = dict.fromkeys(p for p, _ in traced)
    assert all(sum(p == q for q, _ in traced) >= 4 for p in programs), traced
    for program in programs:
        counts = [n for p, n in traced if p == program]
        assert counts[0] > 0 and counts[1:] == [0] * (len(counts) - 1), (program, counts)


def test_blockwise_equals_one_call_and_compiles_for_one_block_shape():
    """``inputs.blockwise`` gives what one call on all replicas gives (against numpy), for chunk sizes below, at
    and above a block, and traces its function once: every call sees one block shape."""
    import jax
    import numpy as np

    from qrobust.experiments import inputs

    shapes = []

    @jax.jit
    def per_replica(a, b):
        shapes.append(a.shape)  # runs only when traced
        return {"sum": jax.vmap(lambda u, v: u * 2 + v.sum())(a, b), "reversed": b[:, ::-1]}

    for r in (1, 5, inputs.INPUT_BLOCK, 13, 20):
        a = np.arange(r, dtype=np.float32)
        b = np.arange(3 * r, dtype=np.float32).reshape(r, 3) ** 2
        got = inputs.blockwise(per_replica, a, b)
        np.testing.assert_array_equal(got["sum"], a * 2 + b.sum(1))
        np.testing.assert_array_equal(got["reversed"], b[:, ::-1])
    assert shapes == [(inputs.INPUT_BLOCK,)]


def test_a_replicas_chunk_inputs_do_not_depend_on_its_chunk():
    """The sweep's inputs of a replica (initial weights, keys, corrupted data) are bit for bit the same in chunks
    of 3 and of 11 replicas, for label flips and for randomised features (whose noise, made for a whole chunk at
    once, differed in its last bits with the chunk's size before inputs were made a block at a time)."""
    import jax
    import numpy as np

    from qrobust.corruption import CORRUPTIONS
    from qrobust.experiments import study
    from qrobust.experiments.inputs import make_chunk_inputs
    from qrobust.experiments.settings import build_model

    config = SweepConfig(**{**TINY, "models": ("qnn",)}).validate()
    dataset = study.load(config)
    model = build_model("qnn", dataset, config.settings_of("qnn"), dtype=config.dtype, simulator=None,
                        matmul_precision=config.matmul_precision)
    inputs = make_chunk_inputs(model, dataset)
    kinds = np.array([CORRUPTIONS.index("flip"), CORRUPTIONS.index("features")] * 6, np.int32)[:11]
    seeds, counts = np.arange(40, 51), np.full(11, 4, np.int32)
    small = jax.tree_util.tree_leaves(inputs(seeds[:3], kinds[:3], counts[:3]))
    large = jax.tree_util.tree_leaves(inputs(seeds, kinds, counts))
    assert len(small) == len(large)
    for s, l in zip(small, large):
        np.testing.assert_array_equal(np.asarray(s), np.asarray(l)[:3])
