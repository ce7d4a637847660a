"""Partition ensembles trained under attack (qrobust.experiments.attack.partition_votes, the attack study's own
training through the engine) against what the certificate promises, checked exhaustively on a tiny problem; and
the attacks' priorities stored with the run and read back by a resumed one."""

import shutil

import numpy as np
import pytest

from qrobust.analysis.attack import attacked_certificates
from qrobust.analysis.certify import dpa_certificate, hash_partition, partition_streams
from qrobust.corruption import CORRUPTIONS, check_feasible
from qrobust.data.features import encode
from qrobust.experiments import adversary, study
from qrobust.experiments.attack import AttackConfig, partition_votes
from qrobust.experiments.poisoners import Priorities

ALPHA = 0.05  # 2 flips of the 40 training images: the largest radius 5 partitions certify


def _config(**kw):
    settings = dict(models=("logistic",), corruptions=("flip", "gradient"), seeds=3, n_train_per_class=20, epochs=6,
                    alphas=(0.0, ALPHA), partitions=5, unroll_steps=3, dpa_epochs=12)
    return AttackConfig(**{**settings, **kw}).validate()


def _full_program(config, dataset):
    """The sweep's program of the model (the full model's: its flips are the ones the ensembles must see)."""
    settings = config.settings_for("logistic")
    return study.build_program(config, "logistic", "logistic", settings, encode(dataset, "amplitude", None))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # module scope runs before conftest's per-test cache: its own
        patch.setenv("QROBUST_CACHE", str(tmp_path_factory.mktemp("cache")))
        return _trained()


def _trained():
    config = _config()
    dataset = study.load(config)
    program = _full_program(config, dataset)
    seeds = np.asarray(config.seeds)
    gradient = adversary.gradient(config, program, seeds, config.attack_options())
    scores = {"logistic": Priorities(dataset, attacks={("gradient", int(s)): g for s, g in zip(seeds, gradient)})}
    counts = {cell: check_feasible(*cell, dataset.y_train) for cell in config.attacked_cells()}
    votes, attacked, _ = partition_votes(config, dataset, scores, counts)
    masks = {}  # the labels each seed's full model trained on, from the engine's own corruption
    for c, a in counts:
        kinds = np.full(len(seeds), CORRUPTIONS.index(c), np.int32)
        _, _, data = program.inputs(seeds, kinds, np.full(len(seeds), counts[(c, a)], np.int32),
                                    scores["logistic"].rows([c] * len(seeds), seeds))
        masks[(c, a)] = np.asarray(data.y) != np.asarray(dataset.y_train)[None, :]
    partition = hash_partition(np.asarray(dataset.x_train), config.partitions)
    return config, dataset, votes, attacked, counts, masks, partition


def test_the_study_trains_the_ensembles_under_every_attack_at_the_largest_alpha_by_default():
    config = _config()
    assert config.dpa_attacked == "largest" and config.attacked_cells() == [("flip", ALPHA), ("gradient", ALPHA)]
    assert _config(dpa_attacked="all").attacked_cells() == config.attacked_cells()  # one alpha > 0 here
    assert AttackConfig(alphas=(0.0, 0.1, 0.3)).validate().attacked_cells()[:2] == [("flip", 0.3), ("boundary", 0.3)]
    assert AttackConfig(alphas=(0.0, 0.1, 0.3), dpa_attacked="all").validate().attacked_cells()[:2] == \
        [("flip", 0.1), ("flip", 0.3)]
    assert _config(dpa_attacked="none").attacked_cells() == [] and _config(partitions=0).attacked_cells() == []


def test_only_the_partitions_holding_a_flip_change_their_vote(trained):
    """Every partition model of a seed whose partition holds none of the flips that seed's full model saw votes
    exactly as the clean one on every validation point (so the attacked ensembles trained on the full model's
    flips, each partition model a function of its own partition); the flips touch at most `flips` partitions;
    and partitions holding a flip do change votes somewhere (the check has teeth)."""
    config, dataset, votes, attacked, counts, masks, partition = trained
    touched_changed = False
    for cell, per_seed in attacked["logistic"].items():
        for i in range(len(config.seeds)):
            mask = masks[cell][i]
            assert mask.sum() == counts[cell] == 2
            hit = set(partition[mask])
            for j in range(config.partitions):
                same = np.array_equal(per_seed[i, j], votes["logistic"][i, j])
                if j not in hit:
                    assert same, (cell, i, j)
                touched_changed |= not same
    assert touched_changed


def test_no_point_certified_for_the_attacks_flips_changes_its_prediction(trained):
    """For every seed, attack and validation point certified at a radius >= the attack's flips, the ensemble
    trained on the attacked labels predicts what the clean ensemble does (counted here from the votes); so the
    certified accuracy at that radius never exceeds the accuracy under attack. The table the study writes
    (``attacked_certificates``) says the same, and the attacks change uncertified points (not vacuous)."""
    config, dataset, votes, attacked, counts, masks, _ = trained
    y = np.asarray(dataset.y_val)
    table = attacked_certificates(votes, attacked, counts, y)
    assert len(table) == len(counts) * len(config.seeds)
    certified_somewhere = changed_somewhere = False
    for row in table.itertuples():
        i = list(config.seeds).index(row.seed)
        clean, radius = dpa_certificate(votes["logistic"][i])
        under, _ = dpa_certificate(attacked["logistic"][(row.corruption, row.alpha)][i])
        covered = radius >= row.flips
        assert (under[covered] == clean[covered]).all()
        assert row.changed_certified == 0
        right = np.mean((clean == y) & covered)
        assert row.certified_acc == pytest.approx(right) and row.attacked_acc == pytest.approx(np.mean(under == y))
        assert row.certified_acc <= row.attacked_acc
        certified_somewhere |= covered.mean() > 0.1
        changed_somewhere |= bool((under != clean).any())
    assert certified_somewhere and changed_somewhere


def test_a_resumed_run_reads_the_stored_priorities(tmp_path, monkeypatch):
    """The attacks' priorities are stored in the run directory (chunk ``adversary.STORED``) the first time; a
    resumed run reads them (computing nothing: the computation is made to fail) with the cost measured then;
    priorities stored by another run's settings are set aside and computed again."""
    config = _config(seeds=2)
    dataset = study.load(config)
    programs = {"logistic": _full_program(config, dataset)}
    counts = {(c, a): check_feasible(c, a, dataset.y_train) for c in config.corruptions for a in config.alphas}

    def store(settings):
        return study.open_store(tmp_path / "run", settings, programs, "attack")

    first, cost = adversary.stored_priorities(config, programs, dataset, counts, config.attack_options(),
                                              store(dict(config.resolved())))
    assert (tmp_path / "run" / "chunks" / f"{adversary.STORED}.npz").is_file()
    real = adversary.priorities
    monkeypatch.setattr(adversary, "priorities", lambda *a, **k: pytest.fail("recomputed"))
    again, cost_again = adversary.stored_priorities(config, programs, dataset, counts, config.attack_options(),
                                                    store(dict(config.resolved())))
    assert again.keys() == first.keys() and again["logistic"].keys() == first["logistic"].keys()
    for key, score in first["logistic"].items():
        np.testing.assert_array_equal(again["logistic"][key], score)
    assert cost_again.seconds.tolist() == pytest.approx(cost.seconds.tolist())
    calls = []
    monkeypatch.setattr(adversary, "priorities", lambda *a, **k: calls.append(1) or real(*a, **k))
    other = _config(seeds=2, unroll_steps=2)  # another attack, whose run holds the first run's chunks
    copy = study.open_store(tmp_path / "other", dict(other.resolved()), programs, "attack")
    for path in (tmp_path / "run" / "chunks").glob("attacks-*"):
        shutil.copy(path, tmp_path / "other" / "chunks" / path.name)
    adversary.stored_priorities(other, programs, dataset, counts, other.attack_options(), copy)
    assert calls == [1] and (tmp_path / "other" / "chunks" / "rejected" / f"{adversary.STORED}.csv").is_file()
