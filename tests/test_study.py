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
