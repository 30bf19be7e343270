"""The IMDE claim at CPU scale, judged on the runs of ``conf/claim/imde.yaml``.

1. A model trained with Euler converges to the IMDE, not to f: err_imde < 0.2 × err_true.
2. The symplectic integrator's model conserves energy: drift(implicit midpoint) <
   0.3 × drift(Euler).
3. err_true = O(h^p) with the integrator's order: the log-log slope over the step-size sweep
   is within 0.3 of 1 for Euler and of 2 for explicit midpoint.
Every number is a mean over the grid's seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.papers.imde.analysis import empirical_order
from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, group_mean, mean_metric, select

IMDE_RATIO_MAX = 0.2
DRIFT_RATIO_MAX = 0.3
ORDER_TOLERANCE = 0.3
EXPECTED_ORDER = {"euler": 1.0, "midpoint": 2.0}


def _integrator(runs: Sequence[Run], name: str) -> list[Run]:
    return select(runs, **{"model.integrator": name})


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("imde")
    main = select(runs, sweep="main")
    euler = _integrator(main, "euler")
    err_true = mean_metric(euler, "analysis/err_true")
    err_imde = mean_metric(euler, "analysis/err_imde")
    result.checks.append(
        Check(
            f"Euler learns the IMDE: err_imde < {IMDE_RATIO_MAX} × err_true",
            f"err_imde {err_imde:.4f}, err_true {err_true:.4f}, ratio {err_imde / err_true:.3f} "
            f"(n={len(euler)})",
            err_imde < IMDE_RATIO_MAX * err_true,
        )
    )

    drift = group_mean(main, "model.integrator", "analysis/energy_drift")
    symplectic, explicit = (
        drift.get("implicit_midpoint", float("nan")),
        drift.get("euler", float("nan")),
    )
    result.checks.append(
        Check(
            "symplectic model conserves energy: "
            f"drift(implicit midpoint) < {DRIFT_RATIO_MAX} × drift(Euler)",
            f"drift implicit midpoint {symplectic:.3f}, Euler {explicit:.3f}, ratio "
            f"{symplectic / explicit:.3f}",
            symplectic < DRIFT_RATIO_MAX * explicit,
        )
    )
    if "midpoint" in drift:
        result.notes.append(
            f"explicit midpoint (not symplectic) drifts too: {drift['midpoint']:.3f}"
        )

    order_runs = select(runs, sweep="order")
    for name, expected in EXPECTED_ORDER.items():
        per_step = group_mean(_integrator(order_runs, name), "data.step_size", "analysis/err_true")
        steps = sorted(per_step, key=float)
        if len(steps) < 2:
            result.checks.append(
                Check(f"{name} order ≈ {expected:g}", "fewer than 2 step sizes", False)
            )
            continue
        order = empirical_order([float(h) for h in steps], [per_step[h] for h in steps])
        pairwise = ", ".join(f"{p:.2f}" for p in order.pairwise)
        result.checks.append(
            Check(
                f"{name}: err_true = O(h^p), p within {ORDER_TOLERANCE} of {expected:g}",
                f"slope {order.slope:.2f} (pairwise {pairwise}) over h = {', '.join(steps)}",
                abs(order.slope - expected) < ORDER_TOLERANCE,
            )
        )
    return result
