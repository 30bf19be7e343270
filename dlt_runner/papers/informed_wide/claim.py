"""The informed-learning claim at CPU scale: ``conf/claim/informed_wide.yaml``.

With imperfect labels and imperfect knowledge the test risk is U-shaped in lambda:

1. wide net: min over interior lambdas of the mean test risk < 0.85 × min(risk(0), risk(1));
2. its infinite-width reference (NTK gradient descent on the same objective, in closed form,
   one curve per run) satisfies the same inequality on its seed-mean curve.

Means over the grid's seeds (at least 3 per lambda). Pure Python: no torch import.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, select

GAIN_MAX = 0.85
MIN_SEEDS = 3
LAMBDA_KEY = "model.knowledge_weight"
RISK = "analysis/test_risk"
REFERENCE_RISK = "analysis/ntk_test_risk"
REFERENCE_CURVE = "analysis/ntk_risk_vs_lambda"
REFERENCE_LAMBDAS = "analysis/ntk_lambdas"


def interior_gain(lambdas: Sequence[float], risks: Sequence[float]) -> float | None:
    """min_{0 < lambda < 1} risk / min(risk(0), risk(1)); None without those points."""
    by_lambda = dict(zip((float(v) for v in lambdas), risks, strict=True))
    interior = [risk for lam, risk in by_lambda.items() if 0.0 < lam < 1.0]
    if 0.0 not in by_lambda or 1.0 not in by_lambda or not interior:
        return None
    return min(interior) / min(by_lambda[0.0], by_lambda[1.0])


def _risk_per_lambda(runs: Sequence[Run], metric: str) -> dict[float, list[float]]:
    values: dict[float, list[float]] = {}
    for run in runs:
        if run.status == "ok" and LAMBDA_KEY in run.overrides and metric in run.metrics:
            values.setdefault(float(run.overrides[LAMBDA_KEY]), []).append(run.get(metric))
    return dict(sorted(values.items()))


def _u_shape_check(subject: str, lambdas: list[float], risks: list[float], seeds: int) -> Check:
    statement = (
        f"{subject}: min over 0 < lambda < 1 of the test risk < {GAIN_MAX} × "
        f"min(risk(0), risk(1)), means over >= {MIN_SEEDS} seeds"
    )
    gain = interior_gain(lambdas, risks)
    if gain is None:
        return Check(statement, f"lambdas {lambdas}: need 0, 1 and an interior one", False)
    by_lambda = dict(zip(lambdas, risks, strict=True))
    interior = {lam: risk for lam, risk in by_lambda.items() if 0.0 < lam < 1.0}
    best = min(interior, key=interior.__getitem__)
    measured = (
        f"risk(0) {by_lambda[0.0]:.4f}, risk(1) {by_lambda[1.0]:.4f}, best interior "
        f"lambda {best:g}: {interior[best]:.4f}, ratio {gain:.3f} (seeds {seeds})"
    )
    return Check(statement, measured, gain < GAIN_MAX and seeds >= MIN_SEEDS)


def _reference_curve(runs: Sequence[Run]) -> tuple[list[float], list[float], int]:
    """Seed-mean of the per-run reference curves (one run per seed: the curve ignores lambda)."""
    per_seed: dict[str, tuple[list[float], list[float]]] = {}
    for run in runs:
        if run.status == "ok" and REFERENCE_CURVE in run.curves:
            per_seed.setdefault(
                run.overrides.get("seed", ""),
                (run.curves[REFERENCE_LAMBDAS], run.curves[REFERENCE_CURVE]),
            )
    if not per_seed:
        return [], [], 0
    lambdas = next(iter(per_seed.values()))[0]
    curves = [curve for grid, curve in per_seed.values() if grid == lambdas]
    return list(lambdas), [mean(column) for column in zip(*curves, strict=True)], len(curves)


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("informed_wide")
    sweep = select(runs, sweep="lambda")
    risks = _risk_per_lambda(sweep, RISK)
    seeds = min((len(values) for values in risks.values()), default=0)
    lambdas = list(risks)
    result.checks.append(
        _u_shape_check("wide net", lambdas, [mean(v) for v in risks.values()], seeds)
    )

    grid, curve, curve_seeds = _reference_curve(sweep)
    result.checks.append(_u_shape_check("infinite-width NTK reference", grid, curve, curve_seeds))

    reference = _risk_per_lambda(sweep, REFERENCE_RISK)
    if risks and reference:
        table = ", ".join(
            f"{lam:g}: {mean(risks[lam]):.3f}/{mean(reference[lam]):.3f}"
            for lam in lambdas
            if lam in reference
        )
        result.notes.append(f"test risk net/NTK reference per lambda: {table}")
    for metric, label in (
        ("analysis/knowledge_error", "knowledge imperfectness E(g-f*)^2"),
        ("analysis/label_noise_variance", "label noise variance"),
    ):
        values = [run.get(metric) for run in sweep if run.status == "ok" and metric in run.metrics]
        if values:
            result.notes.append(f"{label}: {mean(values):.3f}")
    failed = [run.directory.name for run in sweep if run.status != "ok"]
    if failed:
        result.notes.append(f"runs not ok: {', '.join(failed)}")
    return result
