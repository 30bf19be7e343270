"""The informed objective, the knowledge it can use, and the synthetic task.

Informed loss (paper §3), over labelled points i and knowledge points j:

    L = (1 - lambda) mean_i (f(x_i) - y_i)^2 + lambda mean_j r_j(f)^2,

with r the knowledge residual. Knowledge is pluggable (``KNOWLEDGE_TERMS``):

- ``function``: function-valued knowledge g, the paper's "knowledge labels": r_j = f(x_j) - g(x_j);
- ``single_index``: a penalty R(f, x) that needs no labels at all, here the (imperfect)
  invariance "f depends on x only through w1·x": R = |(I - u u^T) grad_x f(x)|, u = w1 / |w1|.

ASSUMPTION (reconstruction): the paper's generalised objective could not be read; we
follow the abstract and also allow knowledge on the labelled points' labels,
y~_i = (1 - beta) y_i + beta g(x_i) (``blend_labels``), with beta a second knob.

The synthetic task (reconstruction; the paper's datasets are not given), d = 5: truth
f*(x) = sin(w1·x) + 0.5 cos(1.5 w2·x), and knowledge g = f* + s e(x) with a named error e
(``KNOWLEDGE_ERRORS``) and error scale s; the default knowledge g = sin(w1·x) is
``missing_term`` at s = 1, with E(g - f*)^2 ≈ 0.125 s^2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from dlt_runner.core.errors import choose

INPUT_DIM = 5
FIRST_DIRECTION = (1.0, -1.0, 0.5, 0.0, 0.0)  # w1
SECOND_DIRECTION = (0.0, 0.5, 0.0, 1.0, -1.0)  # w2
OFFSET = 0.35  # constant knowledge error: E e^2 = 0.1225, about the missing term's 0.125

# --------------------------------------------------------------------------------------------
# The synthetic task
# --------------------------------------------------------------------------------------------


def _project(x: Tensor, direction: tuple[float, ...]) -> Tensor:
    return x @ torch.tensor(direction, dtype=x.dtype, device=x.device)


def first_term(x: Tensor) -> Tensor:
    """sin(w1·x): the part of the truth the default knowledge knows."""
    return torch.sin(_project(x, FIRST_DIRECTION))


def second_term(x: Tensor) -> Tensor:
    """0.5 cos(1.5 w2·x): the part the default knowledge misses."""
    return 0.5 * torch.cos(1.5 * _project(x, SECOND_DIRECTION))


def truth(x: Tensor) -> Tensor:
    """f*(x) = sin(w1·x) + 0.5 cos(1.5 w2·x) for x of shape (n, 5)."""
    return first_term(x) + second_term(x)


def _missing_term_error(x: Tensor) -> Tensor:
    return -second_term(x)


def _offset_error(x: Tensor) -> Tensor:
    return torch.full(x.shape[:1], OFFSET, dtype=x.dtype, device=x.device)


# Knowledge errors e(x): knowledge g = f* + s e. Names are what `data.knowledge` accepts.
KNOWLEDGE_ERRORS: dict[str, Callable[[Tensor], Tensor]] = {
    "missing_term": _missing_term_error,  # s = 1: g = sin(w1·x), the default knowledge
    "offset": _offset_error,  # a constant bias, which the labels can correct everywhere
}


def knowledge_labels(
    x: Tensor, knowledge: str = "missing_term", error_scale: float = 1.0
) -> Tensor:
    """g(x) = f*(x) + error_scale * e(x), e the named knowledge error (s = 0: perfect knowledge)."""
    error = choose("knowledge", knowledge, KNOWLEDGE_ERRORS)
    return truth(x) + error_scale * error(x)


# --------------------------------------------------------------------------------------------
# Knowledge terms: how knowledge enters the loss
# --------------------------------------------------------------------------------------------

Model = Callable[[Tensor], Tensor]
Batch = Mapping[str, Tensor]


class KnowledgeTerm(Protocol):
    """Per-point squared knowledge residual r_j^2; the knowledge loss is their mean.

    ``function_valued`` terms are quadratic in f with targets g, so the informed loss is a
    weighted least-squares problem and has the closed-form infinite-width reference
    (``blended_targets`` + ``nets.gradient_descent_predictions``).
    """

    function_valued: bool

    def squared_residual(self, model: Model, batch: Batch, outputs: Tensor) -> Tensor:
        """r^2 at every point of the batch, shape (n,); ``outputs`` = model(batch['x']), (n,)."""
        ...


class FunctionKnowledge:
    """Knowledge labels g: r_j = f(x_j) - g(x_j), g read from ``batch['knowledge']``."""

    function_valued = True

    def squared_residual(self, model: Model, batch: Batch, outputs: Tensor) -> Tensor:
        return (outputs - batch["knowledge"]) ** 2


class SingleIndexKnowledge:
    """Penalty knowledge "f(x) = h(u·x) for some h": R(f, x) = |(I - u u^T) grad_x f(x)|.

    Zero exactly for single-index functions of u·x. With u = w1 (default) it is imperfect
    knowledge of f*, which also varies along w2 — the penalty analogue of ``missing_term``.
    It differentiates the model in its input, so the loss costs a second forward/backward.
    """

    function_valued = False

    def __init__(self, direction: tuple[float, ...] = FIRST_DIRECTION) -> None:
        self.direction = tuple(float(v) for v in direction)

    def squared_residual(self, model: Model, batch: Batch, outputs: Tensor) -> Tensor:
        x = batch["x"].detach().requires_grad_(True)
        with torch.enable_grad():
            values = model(x)
            (gradient,) = torch.autograd.grad(values.sum(), x, create_graph=True)
        unit = torch.tensor(self.direction, dtype=x.dtype, device=x.device)
        unit = unit / unit.norm()
        orthogonal = gradient - (gradient @ unit)[:, None] * unit
        return (orthogonal**2).sum(dim=1)


KNOWLEDGE_TERMS: dict[str, type[KnowledgeTerm]] = {
    "function": FunctionKnowledge,
    "single_index": SingleIndexKnowledge,
}


def get_knowledge_term(name: str) -> KnowledgeTerm:
    """A knowledge term by its config name (``model.knowledge``)."""
    return choose("knowledge term", name, KNOWLEDGE_TERMS)()


# --------------------------------------------------------------------------------------------
# The informed loss and its weighted least-squares form
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InformedLoss:
    """L = (1 - lambda) label + lambda knowledge, and its two parts (logged per step)."""

    total: Tensor
    label: Tensor
    knowledge: Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is True; 0 when it is nowhere True (no such points)."""
    count = mask.sum().clamp_min(1)
    return torch.where(mask, values, torch.zeros_like(values)).sum() / count


def blend_labels(labels: Tensor, knowledge: Tensor, label_blend: float) -> Tensor:
    """y~ = (1 - beta) y + beta g: the generalised objective's labels (ASSUMPTION, module doc)."""
    if label_blend == 0.0:
        return labels
    return (1.0 - label_blend) * labels + label_blend * knowledge


def informed_loss(
    label_squared_error: Tensor,
    labelled: Tensor,
    knowledge_squared_residual: Tensor,
    informed: Tensor,
    knowledge_weight: float,
) -> InformedLoss:
    """(1 - lambda) mean_{labelled} (f - y)^2 + lambda mean_{informed} r^2.

    Args:
        label_squared_error: (f(x) - y)^2 at every point, (n,); ignored where not ``labelled``.
        labelled: bool (n,), the points with a label.
        knowledge_squared_residual: r^2 at every point, (n,); ignored where not ``informed``.
        informed: bool (n,), the knowledge points (they include the labelled ones).
        knowledge_weight: lambda in [0, 1].
    """
    label = masked_mean(label_squared_error, labelled)
    knowledge = masked_mean(knowledge_squared_residual, informed)
    return InformedLoss(
        (1.0 - knowledge_weight) * label + knowledge_weight * knowledge, label, knowledge
    )


def blended_targets(
    labels: Tensor,
    labelled: Tensor,
    knowledge: Tensor,
    informed: Tensor,
    knowledge_weight: float,
) -> tuple[Tensor, Tensor]:
    """The full-batch informed loss with knowledge labels as sum_k w_k (f(x_k) - t_k)^2 + const.

    w_k = (1 - lambda) [k labelled] / n_lab + lambda [k informed] / n_inf, and
    t_k = ((1 - lambda) [k labelled] / n_lab y_k + lambda [k informed] / n_inf g_k) / w_k
    (t_k = 0 where w_k = 0). On a labelled knowledge point the target blends y and g: this is
    how knowledge "regularises" noisy labels. Returns (weights, targets).
    """
    labelled, informed = labelled.to(labels.dtype), informed.to(labels.dtype)
    label_weight = (1.0 - knowledge_weight) * labelled / labelled.sum().clamp_min(1)
    knowledge_weight_per_point = knowledge_weight * informed / informed.sum().clamp_min(1)
    weights = label_weight + knowledge_weight_per_point
    weighted = label_weight * labels + knowledge_weight_per_point * knowledge
    targets = torch.where(weights > 0, weighted / torch.where(weights > 0, weights, 1.0), 0.0)
    return weights, targets
