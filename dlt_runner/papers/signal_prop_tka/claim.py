"""The ascent-descent claim at CPU scale, on the runs of
``conf/claim/signal_prop_tka.yaml``.

At sigma_w = 1.0 (edge of chaos for tanh), the trained per-layer alignment curve, averaged over
the grid's seeds, peaks at a hidden layer with A_peak - A_first > 0.05 and A_peak - A_last >
0.02. For every sigma_w of the grid the notes give the peak layer at init and after training
and chi_1 (ordered < 1 < chaotic).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dlt_runner.papers.signal_prop_tka.alignment import AlignmentPeak, alignment_peak
from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

CHECKED_WEIGHT_STD = 1.0
MIN_PEAK_MINUS_FIRST = 0.05
MIN_PEAK_MINUS_LAST = 0.02
WEIGHT_STD_KEY = "model.net.weight_std"


def _by_weight_std(runs: Sequence[Run]) -> dict[float, list[Run]]:
    """Finished runs per sigma_w (as a float: '1' and '1.0' are the same setting)."""
    groups: dict[float, list[Run]] = {}
    for run in runs:
        if run.status == "ok" and WEIGHT_STD_KEY in run.overrides:
            groups.setdefault(float(run.overrides[WEIGHT_STD_KEY]), []).append(run)
    return dict(sorted(groups.items()))


def mean_curve(runs: Sequence[Run], curve: str) -> list[float]:
    """Element-wise mean of a curve over the runs that logged it (empty if none did)."""
    curves = [run.curves[curve] for run in runs if curve in run.curves]
    if not curves:
        return []
    return torch.tensor(curves, dtype=torch.float64).mean(0).tolist()


def _describe(peak: AlignmentPeak) -> str:
    return (
        f"peak layer {peak.layer}/{peak.n_layers}, A_peak - A_first {peak.minus_first:.3f}, "
        f"A_peak - A_last {peak.minus_last:.3f}"
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("signal_prop_tka")
    groups = _by_weight_std(select(runs, sweep="main"))
    checked = groups.get(CHECKED_WEIGHT_STD, [])
    final = mean_curve(checked, "analysis/align_final")
    at = f"sigma_w = {CHECKED_WEIGHT_STD:g}"
    if not final:
        result.checks.append(
            Check(
                f"trained alignment at {at} peaks at a hidden layer",
                f"no finished run at {at} logged analysis/align_final",
                False,
            )
        )
        return result

    peak = alignment_peak(final)
    per_seed = [
        alignment_peak(run.curves["analysis/align_final"])
        for run in checked
        if "analysis/align_final" in run.curves
    ]
    seeds = (
        f"per seed: peak {', '.join(str(p.layer) for p in per_seed)}; first-gap "
        f"{', '.join(f'{p.minus_first:.3f}' for p in per_seed)}; last-gap "
        f"{', '.join(f'{p.minus_last:.3f}' for p in per_seed)}"
    )
    curve = " ".join(f"{a:.2f}" for a in final)
    result.checks.append(
        Check(
            f"trained alignment at {at} peaks at a hidden layer (not the first, not the readout)",
            f"mean over {len(per_seed)} seeds: peak layer {peak.layer} of {peak.n_layers}; "
            f"A = {curve}",
            peak.is_hidden,
        )
    )
    result.checks.append(
        Check(
            f"{at}: A_peak - A_first > {MIN_PEAK_MINUS_FIRST}",
            f"{peak.minus_first:.3f} ({seeds})",
            peak.minus_first > MIN_PEAK_MINUS_FIRST,
        )
    )
    result.checks.append(
        Check(
            f"{at}: A_peak - A_last > {MIN_PEAK_MINUS_LAST}",
            f"{peak.minus_last:.3f}",
            peak.minus_last > MIN_PEAK_MINUS_LAST,
        )
    )

    for weight_std, group in groups.items():
        init = mean_curve(group, "analysis/align_init")
        trained = mean_curve(group, "analysis/align_final")
        init_text = _describe(alignment_peak(init)) if init else "no init curve"
        result.notes.append(
            f"sigma_w = {weight_std:g} (chi_1 = {mean_metric(group, 'analysis/chi1'):.2f}, "
            f"n = {len(group)}): at init "
            f"{init_text}; after training {_describe(alignment_peak(trained))}; val acc "
            f"{mean_metric(group, 'val/acc'):.3f}"
        )
    result.notes.append(
        "chi_1 = sigma_w^2 E[phi'(z)^2] at the fixed point q*: < 1 ordered, > 1 "
        "chaotic (mean-field signal propagation)"
    )
    return result
