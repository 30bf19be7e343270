"""The ClofNet claim at CPU scale, judged on the runs of ``conf/claim/clofnet.yaml``.

1. Both networks are SE(3)-equivariant: the relative error under a random proper rotation and
   translation is below 1e-5 (float32 round-off is ~1e-7) for ClofNet and for EGNN.
2. Only EGNN is E(3)-equivariant: its reflection error is round-off (< 1e-5), while ClofNet's is
   above 1e-3, 100x that bound (its frame's e2 = x_i x x_j flips under a reflection; a trained
   ClofNet shows 2e-2 to 1e-1).
3. Accuracy on ES(5): test MSE ClofNet < EGNN < constant velocity.
MSEs are means over the grid's seeds; equivariance errors are the worst run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

MODELS = {
    "clofnet": "clofnet/clofnet",
    "egnn": "clofnet/egnn",
    "constant_velocity": "clofnet/constant_velocity",
}
EQUIVARIANCE_MAX = 1e-5
CLOFNET_REFLECTION_MIN = 1e-3


def _runs(runs: Sequence[Run], model: str) -> list[Run]:
    return select(runs, sweep="main", model=MODELS[model])


def _worst(runs: Sequence[Run], metric: str, pick: Callable[..., float] = max) -> float:
    """``pick`` (max or min) of a metric over the runs that finished ok; NaN if any lacks it."""
    values = [run.get(metric) for run in runs if run.status == "ok"]
    if not values or any(math.isnan(value) for value in values):
        return math.nan
    return pick(values)


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("clofnet")
    by_model = {name: _runs(runs, name) for name in MODELS}
    counts = ", ".join(f"{name} n={len(found)}" for name, found in by_model.items())

    equivariance = {
        name: _worst(by_model[name], "analysis/equivariance_error") for name in ("clofnet", "egnn")
    }
    result.checks.append(
        Check(
            f"SE(3)-equivariant: rotation + translation error < {EQUIVARIANCE_MAX:g} "
            "for ClofNet and EGNN (max over seeds)",
            f"ClofNet {equivariance['clofnet']:.1e}, EGNN {equivariance['egnn']:.1e}",
            all(value < EQUIVARIANCE_MAX for value in equivariance.values()),
        )
    )

    egnn_reflection = _worst(by_model["egnn"], "analysis/reflection_error")
    clofnet_reflection = _worst(by_model["clofnet"], "analysis/reflection_error", min)
    result.checks.append(
        Check(
            f"EGNN is E(3)-equivariant (reflection error < {EQUIVARIANCE_MAX:g}), ClofNet only "
            f"SE(3) (reflection error > {CLOFNET_REFLECTION_MIN:g} in every run)",
            f"EGNN max {egnn_reflection:.1e}, ClofNet min {clofnet_reflection:.1e}",
            egnn_reflection < EQUIVARIANCE_MAX and clofnet_reflection > CLOFNET_REFLECTION_MIN,
        )
    )

    mse = {name: mean_metric(found, "test/mse") for name, found in by_model.items()}
    result.checks.append(
        Check(
            "ES(5) test MSE: ClofNet < EGNN < constant velocity (mean over seeds)",
            f"ClofNet {mse['clofnet']:.5f}, EGNN {mse['egnn']:.5f}, "
            f"constant velocity {mse['constant_velocity']:.4f} ({counts})",
            mse["clofnet"] < mse["egnn"] < mse["constant_velocity"],
        )
    )
    if mse["egnn"] > 0:
        result.notes.append(f"ClofNet / EGNN test MSE: {mse['clofnet'] / mse['egnn']:.3f}")
    failed = [run for found in by_model.values() for run in found if run.status != "ok"]
    if failed:
        result.notes.append(
            f"{len(failed)} run(s) did not finish ok: "
            + ", ".join(
                f"{r.overrides.get('model')} seed {r.overrides.get('seed')} ({r.status})"
                for r in failed
            )
        )
    return result
