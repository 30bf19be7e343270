"""The CFNN claim at CPU scale, judged on the runs of ``conf/claim/coin_flipping.yaml``.

Sieradzki et al. 2022 (abstract, §1): a CFNN with 2 layers and O(1) neurons approximates the
d-ball's indicator by amplification, where deterministic 2-layer nets need exp(Omega(d))
neurons. On the d = 10 ball, for every seed of the grid (each its own data):

1. analytic CFNN (2 neurons, no training): acc@1001 >= 0.95, acc@1001 - det@2 >= 0.20, and the
   accuracy rises strictly with the number of votes (1, 11, 101, 1001);
2. learned CFNN (2 neurons): acc@1001 >= 0.90, acc@1001 - det@2 >= 0.20, and
   acc@1 < acc@101 < acc@1001;

where det@2 is the deterministic width-2 ReLU net trained on the same seed's data. Thresholds
are those fixed before any held-out run (reconstruction; the paper's own ball experiment, if
any, could not be read).
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, group_mean, select

ANALYTIC_MIN = 0.95
LEARNED_MIN = 0.90
GAIN_MIN = 0.20
VOTES = (1, 11, 101, 1001)
BASELINE_WIDTH = 2

ANALYTIC = "coin_flipping/analytic_cfnn"
LEARNED = "coin_flipping/learned_cfnn"


def _by_seed(runs: Sequence[Run]) -> dict[str, Run]:
    return {run.overrides.get("seed", "0"): run for run in runs if run.status == "ok"}


def _curve(run: Run) -> list[float]:
    return [run.get(f"analysis/acc_vote@{n}") for n in VOTES]


def _rising(values: Sequence[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def _cfnn_checks(
    name: str,
    runs: dict[str, Run],
    baseline: dict[str, Run],
    seeds: list[str],
    minimum: float,
    rising: tuple[int, ...],
) -> list[Check]:
    """acc@1001 >= minimum, gain over det@2 >= GAIN_MIN and the rising votes, per seed."""
    levels, gains, curves = [], [], []
    level = gain = rises = bool(seeds)
    for seed in seeds:
        run, det = runs.get(seed), baseline.get(seed)
        if run is None or det is None:
            missing = f"seed {seed}: {name} or det@2 run missing or failed"
            levels.append(missing), gains.append(missing), curves.append(missing)
            level = gain = rises = False
            continue
        curve = _curve(run)
        det_acc = det.get("analysis/acc")
        level &= curve[-1] >= minimum
        gain &= curve[-1] - det_acc >= GAIN_MIN
        rises &= _rising([curve[i] for i in rising])
        levels.append(f"seed {seed}: {curve[-1]:.3f}")
        gains.append(f"seed {seed}: {curve[-1]:.3f} - {det_acc:.3f} = {curve[-1] - det_acc:+.3f}")
        curves.append(f"seed {seed}: " + ", ".join(f"{acc:.3f}" for acc in curve))
    order = " < ".join(f"acc@{VOTES[i]}" for i in rising)
    return [
        Check(
            f"{name} CFNN (2 neurons), 1001 votes: test acc >= {minimum} on every seed",
            "; ".join(levels),
            level,
        ),
        Check(
            f"{name} CFNN acc@1001 - deterministic width-2 net acc >= {GAIN_MIN} on every seed",
            "; ".join(gains),
            gain,
        ),
        Check(
            f"{name} CFNN amplifies: {order} on every seed (acc at 1, 11, 101, 1001 votes)",
            "; ".join(curves),
            rises,
        ),
    ]


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("coin_flipping")
    cfnn = select(runs, sweep="cfnn")
    baselines = select(runs, sweep="baseline")
    det = _by_seed(select(baselines, **{"model.net.width": BASELINE_WIDTH}))
    analytic = _by_seed(select(cfnn, model=ANALYTIC))
    learned = _by_seed(select(cfnn, model=LEARNED))
    seeds = sorted({run.overrides.get("seed", "0") for run in runs}, key=int)
    result.checks += _cfnn_checks("analytic", analytic, det, seeds, ANALYTIC_MIN, (0, 1, 2, 3))
    result.checks += _cfnn_checks("learned", learned, det, seeds, LEARNED_MIN, (0, 2, 3))

    widths = group_mean(baselines, "model.net.width", "analysis/acc")
    result.notes.append(
        "deterministic ReLU nets, test accuracy by width (seed mean): "
        + ", ".join(f"{w}: {widths[w]:.3f}" for w in sorted(widths, key=int))
    )
    for name, group in (("analytic", analytic), ("learned", learned)):
        single = [run.get("analysis/pass_acc") for run in group.values()]
        if single:
            result.notes.append(
                f"{name} CFNN single-pass accuracy (1001-pass mean): "
                + ", ".join(f"{acc:.3f}" for acc in single)
            )
    for seed, run in analytic.items():
        expected = run.curves.get("analysis/expected_acc_vs_votes")
        if expected:
            result.notes.append(
                f"analytic CFNN, seed {seed}, accuracy expected over the coin flips (binomial "
                "tails): " + ", ".join(f"{acc:.3f}" for acc in expected)
            )
    return result
