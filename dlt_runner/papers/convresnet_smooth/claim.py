"""Robust accuracy grows with ConvResNet width (Liu et al. 2022, numerical section), judged on
the runs of ``conf/claim/convresnet_smooth.yaml`` (sklearn digits, CPU scale; reconstruction).

1. Wider is more robust: robust_acc(w=32) >= robust_acc(w=4) + 0.05 (PGD-10, eps 0.1).
2. The gain does not reverse at the top: robust_acc(w=32) >= robust_acc(w=8) - 0.01.

Logged, not judged (neither held at every seed in a plain-PyTorch reference run): whether
the mean input-gradient norm falls monotonically with width, and what depth (1 -> 4 blocks at
width 8) adds to robust accuracy. Every number is a mean over the grid's seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

ROBUST = "analysis/robust_acc_pgd10"
GRAD = "analysis/mean_input_grad_l2"
CLEAN = "analysis/clean_acc"
PARAMS = "analysis/n_params"
WIDTH, BLOCKS = "model.net.width", "model.net.blocks"
NARROW, MIDDLE, WIDE = 4, 8, 32
MIN_GAIN = 0.05
TOLERANCE = 0.01
#: A run whose clean accuracy is below this learned (almost) nothing: 10 balanced classes.
COLLAPSED_BELOW = 0.2


def robust_gain_width(robust_wide: float, robust_narrow: float) -> float:
    """robust_acc(w=32) - robust_acc(w=4): the claim metric."""
    return robust_wide - robust_narrow


def _size_row(runs: Sequence[Run], label: str) -> str:
    return (
        f"{label}: params {mean_metric(runs, PARAMS):,.0f}, clean {mean_metric(runs, CLEAN):.3f}, "
        f"PGD-10 {mean_metric(runs, ROBUST):.3f}, grad norm {mean_metric(runs, GRAD):.3f} "
        f"(n={len(runs)})"
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("convresnet_smooth")
    width_runs = select(runs, sweep="width")
    by_width = {w: select(width_runs, **{WIDTH: w}) for w in (NARROW, MIDDLE, WIDE)}
    robust = {w: mean_metric(group, ROBUST) for w, group in by_width.items()}
    gain = robust_gain_width(robust[WIDE], robust[NARROW])
    result.checks.append(
        Check(
            f"wider ConvResNets are more robust: robust_acc(w={WIDE}) >= "
            f"robust_acc(w={NARROW}) + {MIN_GAIN}",
            f"PGD-10 robust acc {robust[NARROW]:.3f} (w={NARROW}) -> {robust[WIDE]:.3f} "
            f"(w={WIDE}), robust_gain_width {gain:+.3f}",
            gain >= MIN_GAIN,
        )
    )
    result.checks.append(
        Check(
            f"no reversal at the top: robust_acc(w={WIDE}) >= robust_acc(w={MIDDLE}) - {TOLERANCE}",
            f"{robust[MIDDLE]:.3f} (w={MIDDLE}) -> {robust[WIDE]:.3f} (w={WIDE})",
            robust[WIDE] >= robust[MIDDLE] - TOLERANCE,
        )
    )
    for w, group in by_width.items():
        result.notes.append(_size_row(group, f"width {w}, 2 blocks"))
    grads = [mean_metric(by_width[w], GRAD) for w in (NARROW, MIDDLE, WIDE)]
    monotone = grads[0] >= grads[1] >= grads[2]
    result.notes.append(
        "mean input-gradient norm vs width 4/8/32: "
        + " / ".join(f"{g:.3f}" for g in grads)
        + (" (falls monotonically)" if monotone else " (not monotone)")
    )

    for run in runs:
        if run.status == "ok" and run.get(CLEAN) < COLLAPSED_BELOW:
            setting = ", ".join(
                f"{key}={run.overrides[key]}"
                for key in (WIDTH, BLOCKS, "seed")
                if key in run.overrides
            )
            result.notes.append(
                f"collapsed run ({setting}): clean acc {run.get(CLEAN):.3f}, input-gradient "
                f"norm {run.get(GRAD):.3f} (a dead, near-constant classifier)"
            )

    depth_runs = select(runs, sweep="depth")
    by_blocks = {b: select(depth_runs, **{BLOCKS: b}) for b in (1, 4)}
    by_blocks[2] = by_width[MIDDLE]
    for b in (1, 4):
        result.notes.append(_size_row(by_blocks[b], f"width {MIDDLE}, {b} blocks"))
    depth_gain = mean_metric(by_blocks[4], ROBUST) - mean_metric(by_blocks[1], ROBUST)
    result.notes.append(f"depth 1 -> 4 blocks at width {MIDDLE}: robust acc {depth_gain:+.3f}")
    return result
