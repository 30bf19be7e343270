"""Building blocks shared by several papers (plain nn.Modules, no Lightning)."""

from dlt_runner.nn.activations import ACTIVATIONS, get_activation
from dlt_runner.nn.mlp import MLP, ScaledLinear

__all__ = ["ACTIVATIONS", "MLP", "ScaledLinear", "get_activation"]
