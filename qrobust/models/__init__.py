"""Models as pairs of pure functions (init, apply) for one example, behind one registry."""

from qrobust.models.base import Model, batch_logits, count_params
from qrobust.models.mlp import mlp
from qrobust.models.qnn import SIMULATORS, light_cone, qnn, ring_zz_signs, rotation_matrix
from qrobust.models.registry import ModelSpec, flax_model, model_from

MODELS = ("qnn", "mlp")  # the built-in models (a user's enter through qrobust.models.registry)

__all__ = ["Model", "ModelSpec", "batch_logits", "count_params", "SIMULATORS", "flax_model", "mlp", "model_from",
           "qnn", "light_cone", "ring_zz_signs", "rotation_matrix", "MODELS"]
