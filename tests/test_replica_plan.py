"""The reproduction's replica plan (qrobust.experiments.replica_plan): the union of the replicas the parts declare
is trained once, and a study run after the plan reads every one of its declared replicas back and equals the same
study run alone, bit for bit."""

from qrobust import replicas
from qrobust.experiments import replica_plan
from qrobust.experiments.sweep import SweepConfig, run_sweep
from qrobust.experiments.unlearning_grid import UnlearnConfig

from test_replicas import TINY, _counts, _entries, _same_run


def test_the_union_is_trained_once_and_a_study_after_it_equals_itself_run_alone(tmp_path, monkeypatch):
    first = SweepConfig(**TINY, models=("qnn",), alphas=(0.0, 0.5), seeds=(0, 1))
    later = SweepConfig(**TINY, models=("qnn",), alphas=(0.5,), seeds=(1, 2, 3))
    run_sweep(later, tmp_path / "alone", progress=False)  # in the test's own cache
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "planned-cache"))
    monkeypatch.setattr(replica_plan, "cap_of", lambda program: 2)  # chunks of 2: the padding is counted
    monkeypatch.setattr(replicas, "_PLANNED", set())  # this test's plan only
    planned = replica_plan.run({"first": ("sweep", first), "later": ("sweep", later)}, progress=False)
    # brute force: the distinct (alpha, seed) pairs of both grids; each part alone trains what no earlier part did
    union = {(a, s) for c in (first, later) for a in c.alphas for s in c.seeds}
    assert len(union) == 6 and len(_entries()) == 6
    assert (planned["declared"], planned["declared_replica_epochs"]) == (4 + 3, 21)
    assert (planned["trained"], planned["stored"]) == (6, 0)
    # alone: first's 4 in chunks of 2 and 2, then later's 2 new replicas in a chunk of 2: a compiled program per
    # part; planned: the 6 in chunks of 2, one program
    assert planned["parts_alone"] == dict(replicas=6, replica_epochs=18, padded_replica_epochs=18, programs=2)
    assert planned["planned"] == dict(replicas=6, replica_epochs=18, padded_replica_epochs=18, programs=1)
    assert planned["trained_replica_epochs"] == 18
    assert replicas.planned(replica_plan.sweep_demands(later)[0].program.plan_key())  # its part does not probe
    run_sweep(later, tmp_path / "after", progress=False)
    assert _counts(tmp_path / "after") == {"qnn": (3, 0)}  # every replica read back
    _same_run(tmp_path / "alone", tmp_path / "after")
    again = replica_plan.run({"later": ("sweep", later)}, progress=False)
    assert (again["stored"], again["trained"]) == (3, 0)


def test_what_the_studies_declare(tmp_path):
    """A sweep declares every replica of a corruption that ranks by no trained model; a reference-ranked one
    (boundary) is left to its part. An unlearning study declares its poisoned and clean teachers."""
    sweep = SweepConfig(**dict(TINY, corruptions=("flip", "boundary", "quid")), models=("qnn", "mlp"),
                        alphas=(0.0, 0.5), seeds=(0, 1, 2))
    declared = replica_plan.sweep_demands(sweep, None)
    assert sorted(d.program.name for d in declared) == ["mlp", "qnn"]
    for d in declared:  # flip and quid: 2 x 2 alphas x 3 seeds
        assert len(d.seeds) == 12 and d.scores is not None and d.scores.shape == (12, 16)
        assert not d.scores[:6].any() and d.scores[6:].any()  # flip's rows first, unranked; quid's ranked
    teachers = replica_plan.teacher_demands(UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=8,
                                                          seeds=(3, 4), teacher_epochs=2, alpha=0.25), None)
    assert [d.program.name for d in teachers] == ["qnn", "mlp"]
    for d in teachers:
        assert d.seeds.tolist() == [3, 4, 3, 4] and d.counts.tolist() == [4, 4, 0, 0] and d.scores is None


def test_a_program_that_vmaps_its_replicas_is_left_to_its_part(monkeypatch):
    """On an accelerator the trainer vmaps the replica axis, and a replica's bits depend on its chunk: the plan
    does not train it for the parts."""
    from qrobust import sharding

    config = SweepConfig(**TINY, models=("qnn",), alphas=(0.5,), seeds=(0,))
    assert replica_plan.union({"part": replica_plan.sweep_demands(config, None)})  # on CPU: planned
    monkeypatch.setattr(sharding, "cpu_only", lambda: False)
    declared = replica_plan.sweep_demands(config, None)
    assert declared and declared[0].program.trainer().recipe.mode == "vmap"
    assert replica_plan.union({"part": declared}) == {}
