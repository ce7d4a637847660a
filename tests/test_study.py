"""The study skeleton: every study compiles each of its programs once, however many chunks it runs."""

import pytest
from jax import monitoring

from qrobust.experiments import DetectConfig, LandscapeConfig, SweepConfig, UnlearnConfig
from qrobust.experiments import run_detection, run_landscape, run_sweep, run_unlearning

_events = []
monitoring.register_event_duration_secs_listener(lambda name, duration, **kw: _events.append(name))

TINY = dict(dataset="xxz", n_qubits=4, models=("mlp",), seeds=(0, 1, 2, 3))
STUDIES = {
    "sweep": (run_sweep, SweepConfig(**TINY, n_train_per_class=6, corruptions=("flip",), alphas=(0.0, 0.5),
                                     epochs=2)),
    "unlearning": (run_unlearning, UnlearnConfig(**TINY, n_train_per_class=6, methods=("retrain", "finetune"),
                                                 epochs=2, teacher_epochs=2)),
    "detection": (run_detection, DetectConfig(**TINY, n_train_per_class=6, alphas=(0.5,), epochs=2,
                                              baselines=False)),
    "landscape": (run_landscape, LandscapeConfig(**TINY, alphas=(0.0, 0.5), epochs=2, n_eval=10,
                                                 hutchinson_samples=4, lanczos_iter=4, lanczos_k=2)),
}


def _traces(run, config, out) -> int:
    """Functions traced (jitted programs built) while running the study in ``out``."""
    before = len(_events)
    run(config, out, progress=False)
    return sum(name == "/jax/core/compile/jaxpr_trace_duration" for name in _events[before:])


@pytest.mark.parametrize("name", list(STUDIES))
def test_a_study_traces_its_programs_once_however_many_chunks(name, tmp_path):
    """One replica per chunk, 2 seeds then 4 seeds: twice as many chunks of the same shapes, yet no more
    functions traced (and so compiled): every program is built once per study, not per chunk. (The landscape
    study rebuilt its measurement programs inside each chunk until the skeleton.)"""
    from dataclasses import replace

    run, config = STUDIES[name]
    many_config = replace(config, chunk_size=1)
    few_config = replace(many_config, seeds=(0, 1))
    for k, c in enumerate((few_config, many_config)):  # module-level jits and primitives at these shapes
        run(c, tmp_path / f"warm{k}", progress=False)
    few = _traces(run, few_config, tmp_path / "few")
    many = _traces(run, many_config, tmp_path / "many")
    assert 0 < many == few, (name, few, many)
    assert len(list((tmp_path / "many" / "chunks").glob("*.csv"))) == 2 * len(
        list((tmp_path / "few" / "chunks").glob("*.csv")))
