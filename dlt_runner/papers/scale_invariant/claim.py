"""The scale-invariant training claim at CPU scale, judged on ``conf/claim/scale_invariant.yaml``.

Robustness is the worst test accuracy over the five (initial scale α, loss scale β) settings of
the paper's Section 5. The recipe (scale-invariant net, SGD + weight decay, norm-proportional
clipping) must stay accurate at every setting; SGD on the standard net must fail at some
(stall at tiny scales, diverge at large ones). A run that diverged counts at chance accuracy:
a diverging run is a result, and the worst one.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run

RECIPE_MIN_ACC = 0.90
STANDARD_SGD_MIN_ACC_BELOW = 0.50
CHANCE = 0.1
METHODS = {
    "scale_invariant/si_sgd": "SI + SGD (clipped)",
    "scale_invariant/standard_sgd": "standard + SGD",
    "scale_invariant/standard_adam": "standard + Adam",
}


def _setting(run: Run) -> str:
    return (
        f"α={run.overrides.get('model.init_scale', '1')},"
        f"β={run.overrides.get('model.loss_scale', '1')}"
    )


def _accuracy(run: Run) -> float:
    return run.get("test/acc") if run.status == "ok" else CHANCE


def accuracies(runs: Sequence[Run], model: str) -> dict[str, list[float]]:
    """Test accuracy per (α, β) setting (over seeds) of one method's runs."""
    table: dict[str, list[float]] = {}
    for run in runs:
        if run.overrides.get("model") == model:
            table.setdefault(_setting(run), []).append(_accuracy(run))
    return table


def worst(table: dict[str, list[float]]) -> tuple[float, str]:
    """The lowest accuracy over settings and seeds, and the setting where it happened."""
    if not table:
        return float("nan"), "no runs"
    return min((min(values), setting) for setting, values in table.items())


def _describe(table: dict[str, list[float]]) -> str:
    return ", ".join(
        f"{setting} {' / '.join(f'{v:.3f}' for v in values)}" for setting, values in table.items()
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("scale_invariant")
    recipe = accuracies(runs, "scale_invariant/si_sgd")
    standard = accuracies(runs, "scale_invariant/standard_sgd")
    recipe_min, recipe_where = worst(recipe)
    standard_min, standard_where = worst(standard)
    result.checks.append(
        Check(
            f"SI + SGD + clipping is robust: min test acc over (α, β) >= {RECIPE_MIN_ACC}",
            f"min {recipe_min:.3f} at {recipe_where} (n={sum(map(len, recipe.values()))}); "
            + _describe(recipe),
            recipe_min >= RECIPE_MIN_ACC and len(recipe) == 5,
        )
    )
    result.checks.append(
        Check(
            f"standard net + SGD is not: min test acc over (α, β) < {STANDARD_SGD_MIN_ACC_BELOW}",
            f"min {standard_min:.3f} at {standard_where}; " + _describe(standard),
            standard_min < STANDARD_SGD_MIN_ACC_BELOW and len(standard) == 5,
        )
    )
    adam_min, adam_where = worst(accuracies(runs, "scale_invariant/standard_adam"))
    result.notes.append(f"standard + Adam: min test acc {adam_min:.3f} at {adam_where}")
    diverged = [
        f"{METHODS.get(r.overrides.get('model', ''), '?')} {_setting(r)}"
        for r in runs
        if r.status == "diverged"
    ]
    if diverged:
        result.notes.append("diverged (counted at chance): " + "; ".join(diverged))
    return result
