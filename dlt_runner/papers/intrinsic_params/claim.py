"""The intrinsic-parameter claim at CPU scale (runs of ``conf/claim/intrinsic_params.yaml``).

Training only a small block between frozen layers classifies nearly as well as training the
whole network (Shen, Yang & Zhang 2022, classification experiments, Fig. 4; CPU reconstruction
on digits 5-9 with phi_in pre-trained on digits 0-4):

1. the intrinsic net (k = 8, pre-trained phi_in) trains under 5 % of the parameters;
2. its test accuracy is >= the fully trained net's - 0.05;
3. it beats the same intrinsic training on a random frozen phi_in (pre-training on a related
   task is what makes the few intrinsic parameters enough).

Reported: test accuracy vs k for random and pre-trained phi_in, and the parameter counts.
Every number is a mean over the runs of that setting (three seeds for the judged k = 8 and full
training, one for the rest of the curve by default).
Pure Python: no torch import.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

TOLERANCE = 0.05
TRAINABLE_FRACTION_MAX = 0.05
CLAIM_K = 8
ACC = "analysis/test_acc_target_task"
INTRINSIC_SWEEPS = ("intrinsic", "curve")  # the judged k and the accuracy-vs-k curve


def _intrinsic_runs(runs: Sequence[Run]) -> list[Run]:
    return [run for run in runs if run.sweep in INTRINSIC_SWEEPS]


def _intrinsic(runs: Sequence[Run], pretrained: bool, k: int) -> list[Run]:
    return [
        run
        for run in _intrinsic_runs(runs)
        if run.status == "ok"
        and run.get("analysis/pretrained") == float(pretrained)
        and run.get("analysis/k") == float(k)
    ]


def _widths(runs: Sequence[Run]) -> list[int]:
    return sorted(
        {int(run.get("analysis/k")) for run in _intrinsic_runs(runs) if run.status == "ok"}
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("intrinsic_params")
    full = [run for run in select(runs, sweep="full") if run.status == "ok"]
    pretrained = _intrinsic(runs, True, CLAIM_K)
    random = _intrinsic(runs, False, CLAIM_K)
    missing = [
        name
        for name, group in (
            ("full training", full),
            (f"pre-trained phi_in, k={CLAIM_K}", pretrained),
            (f"random phi_in, k={CLAIM_K}", random),
        )
        if not group
    ]
    if missing:
        result.checks.append(
            Check("the claim grid's runs finish", f"no finished run: {', '.join(missing)}", False)
        )
        return result

    fraction = mean_metric(pretrained, "analysis/trainable_fraction")
    n_trainable = mean_metric(pretrained, "analysis/n_trainable")
    n_total = mean_metric(pretrained, "analysis/n_total")
    result.checks.append(
        Check(
            f"few intrinsic parameters: trainable fraction (k={CLAIM_K}) "
            f"< {TRAINABLE_FRACTION_MAX:.0%}",
            f"{n_trainable:.0f} of {n_total:.0f} = {fraction:.2%}",
            fraction < TRAINABLE_FRACTION_MAX,
        )
    )
    acc_intrinsic = mean_metric(pretrained, ACC)
    acc_full = mean_metric(full, ACC)
    result.checks.append(
        Check(
            f"intrinsic-only training nearly matches full training: "
            f"acc(pre-trained phi_in, k={CLAIM_K}) >= acc(full) - {TOLERANCE}",
            f"{acc_intrinsic:.3f} vs {acc_full:.3f} (gap {acc_full - acc_intrinsic:+.3f}; "
            f"n={len(pretrained)}, {len(full)})",
            acc_intrinsic >= acc_full - TOLERANCE,
        )
    )
    acc_random = mean_metric(random, ACC)
    result.checks.append(
        Check(
            f"pre-training phi_in on the related task helps: acc(pre-trained, k={CLAIM_K}) "
            f"> acc(random, k={CLAIM_K})",
            f"{acc_intrinsic:.3f} vs {acc_random:.3f} (lead {acc_intrinsic - acc_random:+.3f}; "
            f"n={len(pretrained)}, {len(random)})",
            acc_intrinsic > acc_random,
        )
    )

    for k in _widths(runs):
        row = []
        for label, flag in (("random", False), ("pre-trained", True)):
            group = _intrinsic(runs, flag, k)
            if group:
                row.append(f"{label} {mean_metric(group, ACC):.3f}")
        counts = _intrinsic(runs, True, k) or _intrinsic(runs, False, k)
        share = (
            f"; {mean_metric(counts, 'analysis/n_trainable'):.0f} trainable "
            f"({mean_metric(counts, 'analysis/trainable_fraction'):.2%})"
            if counts
            else ""
        )
        result.notes.append(f"k={k}: test acc {', '.join(row)}{share}")
    pretrain_acc = mean_metric(
        [run for run in _intrinsic_runs(runs) if run.get("analysis/pretrained") == 1.0],
        "analysis/pretrain_test_acc",
    )
    result.notes.append(
        f"phi_in pre-training head: related-task (digits 0-4) test acc {pretrain_acc:.3f}"
    )
    failed = [run for run in runs if run.status != "ok"]
    if failed:
        result.notes.append(f"{len(failed)} of {len(runs)} runs did not finish")
    return result
