"""Augmentation as feature manipulation at CPU scale.

Judged on the runs of ``conf/claim/augmentation_features.yaml``:

1. Augmentation makes the cubic patch CNN learn the hard view: hard-only accuracy with patch
   drop (keep 0.5) minus without, aug_gain(cubic) >= 0.2.
2. The effect is much weaker for the linear model: aug_gain(cubic) >= aug_gain(linear) + 0.1.
3. It is a change of the learned features: the cubic filters' alignment with the hard view is
   higher with augmentation than without.
Every number is a mean over the grid's seeds; the two models differ only in the activation.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

CUBIC_GAIN_MIN = 0.2
GAIN_MARGIN = 0.1


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("augmentation_features")
    main = select(runs, sweep="main")
    cubic = select(main, **{"model.net.act": "cubic"})
    linear = select(main, **{"model.net.act": "linear"})
    gain_cubic = mean_metric(cubic, "analysis/aug_gain")
    gain_linear = mean_metric(linear, "analysis/aug_gain")

    def hard_only(group: Sequence[Run], which: str) -> float:
        return mean_metric(group, f"analysis/hard_only_acc_{which}")

    result.checks.append(
        Check(
            f"augmentation lifts the cubic CNN's hard-only accuracy: aug_gain >= {CUBIC_GAIN_MIN}",
            f"hard-only {hard_only(cubic, 'no_aug'):.3f} -> {hard_only(cubic, 'aug'):.3f}, "
            f"gain {gain_cubic:+.3f} (n={len(cubic)})",
            gain_cubic >= CUBIC_GAIN_MIN,
        )
    )
    result.checks.append(
        Check(
            "much weaker for the linear model: "
            f"aug_gain(cubic) >= aug_gain(linear) + {GAIN_MARGIN}",
            f"linear hard-only {hard_only(linear, 'no_aug'):.3f} -> "
            f"{hard_only(linear, 'aug'):.3f}, "
            f"gain {gain_linear:+.3f} vs cubic {gain_cubic:+.3f} (n={len(linear)})",
            gain_cubic >= gain_linear + GAIN_MARGIN,
        )
    )
    hard_aug = mean_metric(cubic, "analysis/align_hard_aug")
    hard_no_aug = mean_metric(cubic, "analysis/align_hard_no_aug")
    result.checks.append(
        Check(
            "the cubic filters align more with the hard view under augmentation",
            f"align_hard {hard_no_aug:.3f} -> {hard_aug:.3f}; align_easy "
            f"{mean_metric(cubic, 'analysis/align_easy_no_aug'):.3f} -> "
            f"{mean_metric(cubic, 'analysis/align_easy_aug'):.3f}",
            hard_aug > hard_no_aug,
        )
    )
    result.notes.append(
        "test accuracy (no aug -> aug): cubic "
        f"{mean_metric(cubic, 'analysis/test_acc_no_aug'):.3f} -> "
        f"{mean_metric(cubic, 'analysis/test_acc_aug'):.3f}, linear "
        f"{mean_metric(linear, 'analysis/test_acc_no_aug'):.3f} -> "
        f"{mean_metric(linear, 'analysis/test_acc_aug'):.3f}"
    )
    return result
