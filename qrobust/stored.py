"""A run directory's trained weights, read back: the models they belong to, rebuilt as the study built them
(``qrobust.models.registry``), and every stored replica's weights and predictions. Below the studies (it needs no
study registry), so a study can read its own weights; ``qrobust.results.RunResults`` is one of these plus the
run's tables. Nothing is trained or written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qrobust.errors import ConfigError


class Trained(NamedTuple):
    """The stored replicas of one program: ``replicas`` (one row per replica: its grid coordinates, in the order
    of ``params``), ``params`` (the replica-stacked parameters, as the model's ``init`` shapes them) and the
    rebuilt ``model`` they belong to."""

    program: str
    replicas: pd.DataFrame
    params: Any
    model: Any


class StoredWeights:
    """The trained weights of the run directory ``path`` (its programs.json and its chunks' weights)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def programs(self) -> dict[str, dict]:
        """program -> how its model is built (programs.json), for the programs that stored it."""
        path = self.path / "programs.json"
        try:
            recorded = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} does not parse ({type(exc).__name__}): its weights cannot be read") from None
        return recorded if isinstance(recorded, dict) else {}

    def model(self, program: str, **changes):
        """The model ``program``'s weights belong to, rebuilt as the study built it (``qrobust.models.registry``;
        a user's model must be registered in this process under the name the run recorded); ``changes``: settings
        that do not change its weights' shapes (noise="none": the same circuit read without gate noise)."""
        from qrobust.data import Dataset
        from qrobust.models.registry import BuildOptions, ModelSettings, build

        described = self.programs().get(program)
        if described is None:
            raise ConfigError(f"{self.path} records no program {program!r} (programs.json: "
                              f"{', '.join(self.programs()) or 'none'})")
        inputs, numerics = described["inputs"], described["numerics"]
        s = dict(described["settings"])
        s["hidden"] = tuple(s.get("hidden", ()))
        s.update(changes)
        width = inputs["width"]
        x = np.zeros((1, width), complex if inputs["complex"] else float)
        shape = Dataset("shape", x, np.zeros(1, int), x, np.zeros(1, int), inputs["n_qubits"],
                        {"encoding": inputs["encoding"]})
        options = BuildOptions(numerics["dtype"], numerics["simulator"], numerics["matmul_precision"],
                               shot_gradient=numerics.get("shot_gradient", "shift"))
        return build(described["model"], shape, ModelSettings(**s), options)

    def weights(self, program: str | None = None) -> dict[str, Trained]:
        """program -> its stored replicas (``Trained``), read from the chunks that kept their weights (a study's
        ``keep_weights``); with ``program``, that one only. A chunk set aside as another run's is not read."""
        import jax

        from qrobust.models.base import unflatten

        found: dict[str, list] = {}
        for chunk in sorted((self.path / "chunks").glob("*.npz")):
            name = chunk.stem
            key = name.rsplit("-", 1)[0]
            if program is not None and key != program:
                continue
            with np.load(chunk) as z:
                if "params" not in z.files:
                    continue
                flat = z["params"]
            frame = pd.read_csv(chunk.with_suffix(".csv"))
            step = len(frame) // len(flat)  # rows per replica: its recorded epochs, the last one last
            found.setdefault(key, []).append((frame.iloc[step - 1::step].reset_index(drop=True), flat))
        if program is not None and program not in found:
            raise ConfigError(f"{self.path} holds no stored weights of program {program!r} (programs with weights: "
                              f"{', '.join(self.weights()) or 'none'}; a study keeps them unless keep_weights says "
                              "not to)")
        out = {}
        for key, parts in found.items():
            model = self.model(key)
            template = jax.eval_shape(model.init, jax.random.PRNGKey(0))
            replicas = pd.concat([p[0] for p in parts], ignore_index=True)
            drop = [c for c in ("epoch",) if c in replicas]
            out[key] = Trained(key, replicas.drop(columns=drop), unflatten(template, np.concatenate(
                [p[1] for p in parts])), model)
        return out

    def predict(self, program: str, inputs) -> np.ndarray:
        """(replicas, inputs) logits of every stored replica of ``program`` on ``inputs`` (raw inputs as its
        dataset gives them: amplitude vectors, or the features of an angle or reupload encoding); the rows are
        those of ``weights()[program].replicas``."""
        return logits_of(self.weights(program)[program], inputs)


def logits_of(trained: Trained, inputs) -> np.ndarray:
    """(replicas, inputs) logits of the stored replicas ``trained`` (``StoredWeights.weights``) on raw ``inputs``,
    for a caller that holds them already (no second read of the chunks)."""
    import jax

    from qrobust.models import batch_logits

    xs = trained.model.prepare(np.asarray(inputs))
    logits = jax.jit(jax.vmap(batch_logits(trained.model), in_axes=(0, None)))
    return np.asarray(logits(trained.params, xs))
