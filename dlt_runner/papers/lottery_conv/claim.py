"""The strong-lottery-ticket claim at CPU scale (runs of ``conf/claim/lottery_conv.yaml``).

For the conv and the residual variant (Burkholz 2022, existence theorems, reached by edge-popup
search as in Ramanujan et al. 2020):

1. a pruned random net of width 64 matches the trained dense target of width 8: mean popup
   accuracy (six random nets) >= target accuracy - 0.03;
2. wider random nets contain better tickets: mean popup accuracy at width 64 > at width 8
   (the two ends only: the 32 -> 64 step is flat, equal means at some seeds).

And the subset-sum step of the constructions: with n = 15 uniform numbers, >= 95 % of the
trained conv target's second-layer weights (scaled to [-1, 1]) are matched within eps = 0.01.
The constructed L+1 / 2L / per-parameter tickets' accuracies are reported as notes.
Pure Python: no torch import.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

TOLERANCE = 0.03
HIT_RATE_MIN = 0.95
VARIANTS = {"conv": "lottery_conv/conv", "residual": "lottery_conv/residual"}
CURVE = "analysis/acc_vs_width"
WIDTHS = "analysis/widths"
NOTES = {
    "conv": [
        ("analysis/ticket_acc_l_plus_1", "L+1 ticket acc"),
        ("analysis/ticket_nonzero_params_l_plus_1", "L+1 ticket non-zero params"),
        ("analysis/ticket_acc_two_l", "2L ticket acc"),
        ("analysis/ticket_nonzero_params_two_l", "2L ticket non-zero params"),
        ("analysis/target_nonzero_params_l_plus_1", "target conv params"),
    ],
    "residual": [
        ("analysis/ticket_acc_per_parameter", "per-parameter ticket acc"),
        ("analysis/ticket_nonzero_params_per_parameter", "its non-zero params (estimate)"),
    ],
}


def _ok(runs: Sequence[Run], model: str) -> list[Run]:
    return [run for run in select(runs, model=model) if run.status == "ok"]


def _popup_curve(runs: Sequence[Run]) -> dict[float, float]:
    """Width -> mean popup accuracy over the random nets (one run holds them all)."""
    for run in runs:
        if CURVE in run.curves and WIDTHS in run.curves:
            return dict(zip(run.curves[WIDTHS], run.curves[CURVE], strict=True))
    return {}


def _variant_checks(name: str, runs: Sequence[Run], result: Verdict) -> None:
    prefix = VARIANTS[name]
    target_runs = _ok(runs, f"{prefix}_target")
    curve = _popup_curve(_ok(runs, f"{prefix}_popup"))
    target = mean_metric(target_runs, "analysis/target_acc")
    statement = (
        f"{name}: mean popup acc at the widest random net >= trained dense acc (width 8) "
        f"- {TOLERANCE}"
    )
    if not curve or not target_runs:
        result.checks.append(Check(statement, "missing target or popup run", False))
        return
    widths = sorted(curve)
    narrow, wide = curve[widths[0]], curve[widths[-1]]
    table = ", ".join(f"w{w:g}: {curve[w]:.3f}" for w in widths)
    result.checks.append(
        Check(
            statement,
            f"popup {table}; target {target:.3f}; margin {wide - target + TOLERANCE:+.3f}",
            wide >= target - TOLERANCE,
        )
    )
    result.checks.append(
        Check(
            f"{name}: mean popup acc grows from the narrowest to the widest random net",
            f"w{widths[0]:g} {narrow:.3f} -> w{widths[-1]:g} {wide:.3f} ({wide - narrow:+.3f})",
            wide > narrow and len(widths) > 1,
        )
    )
    for metric, label in NOTES[name]:
        if any(metric in run.metrics for run in target_runs):
            result.notes.append(f"{name}: {label} {mean_metric(target_runs, metric):.4g}")
    popup = _ok(runs, f"{prefix}_popup")
    random = mean_metric(popup, "analysis/random_acc")
    result.notes.append(f"{name}: unpruned random net (widest) acc {random:.3f}")


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("lottery_conv")
    digits = select(runs, sweep="digits")
    for name in VARIANTS:
        _variant_checks(name, digits, result)
    conv = _ok(digits, "lottery_conv/conv_target")
    hit_rate = mean_metric(conv, "analysis/ssa_hit_rate")
    median = mean_metric(conv, "analysis/ssa_median_abs_err")
    result.checks.append(
        Check(
            f"subset sum (n=15, eps=0.01): hit rate >= {HIT_RATE_MIN} on the conv target's "
            "2nd-layer weights",
            f"hit rate {hit_rate:.3f}, median |error| {median:.1e}",
            hit_rate >= HIT_RATE_MIN,
        )
    )
    failed = [run.directory.name for run in digits if run.status != "ok"]
    if failed:
        result.notes.append(f"runs not ok: {', '.join(failed)}")
    return result
