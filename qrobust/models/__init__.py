"""Layer 3: models as pairs of pure functions (init, apply) for one example."""

from qrobust.models.base import Model, batch_logits, count_params
from qrobust.models.mlp import mlp
from qrobust.models.qnn import SIMULATORS, light_cone, qnn, ring_zz_signs, rotation_matrix

MODELS = ("qnn", "mlp")

__all__ = ["Model", "batch_logits", "count_params", "SIMULATORS", "mlp", "qnn", "light_cone", "ring_zz_signs",
           "rotation_matrix", "MODELS"]
