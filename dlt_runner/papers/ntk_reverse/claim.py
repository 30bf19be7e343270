"""The ntk_reverse claim at CPU scale, judged on `conf/claim/ntk_reverse.yaml`'s runs.

1. Realisability: the empirical NTK of a width-8192 one-hidden-layer net with the designed
   Hermite activation matches the designed kernel, ||K_emp - K_design||_F / ||K_design||_F < 0.10.
2. Design use case: the trained width-2048 shallow mimic net is as accurate as kernel regression
   with the deep ReLU NTK it mimics, |acc_net - acc_kernel_target| < 0.03.
Every number is a mean over the grid's seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

KERNEL_ERROR_MAX = 0.10
ACCURACY_GAP_MAX = 0.03


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("ntk_reverse")
    main = select(runs, sweep="main")
    ok = [run for run in main if run.status == "ok"]
    n = f"n={len(ok)}/{len(main)}"

    kernel_error = mean_metric(main, "analysis/kernel_rel_err")
    target_error = mean_metric(main, "analysis/kernel_rel_err_target")
    width = mean_metric(main, "analysis/kernel_width")
    result.checks.append(
        Check(
            f"empirical NTK of the shallow mimic net ≈ designed kernel: rel. Frobenius error "
            f"< {KERNEL_ERROR_MAX} at width 8192",
            f"{kernel_error:.4f} at width {width:.0f} (vs the deep ReLU NTK, fit error "
            f"included: {target_error:.4f}; {n})",
            kernel_error < KERNEL_ERROR_MAX and width >= 8192,
        )
    )

    gap = mean_metric(main, "analysis/acc_gap")
    net = mean_metric(main, "analysis/acc_net")
    deep = mean_metric(main, "analysis/acc_kernel_target")
    result.checks.append(
        Check(
            f"trained shallow mimic net ≈ deep ReLU NTK regression: |acc gap| < {ACCURACY_GAP_MAX}",
            f"gap {gap:.4f} (net {net:.4f}, deep NTK regression {deep:.4f}; {n})",
            gap < ACCURACY_GAP_MAX,
        )
    )

    designed = mean_metric(main, "analysis/acc_kernel_designed")
    fit_error = mean_metric(main, "analysis/fit_max_error")
    result.notes.append(
        f"designed-kernel regression acc {designed:.4f} vs deep NTK {deep:.4f}; "
        f"max polynomial fit error {fit_error:.3f}"
    )
    return result
