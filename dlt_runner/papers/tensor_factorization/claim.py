"""Deeper CP factorisations complete tensors better (paper abstract, §5), at CPU scale.

Judged on the runs of ``conf/claim/tensor_factorization.yaml``: for each problem seed one run
per depth, each holding 15 initialisations whose medians the module reports. Deep (L = 3) against
shallow (L = 1) CP, thresholds fixed before any held-out seed was run:

(a) per seed, median test (unobserved-entry) error: deep < shallow;
(b) per seed, median effective rank of the mode-1 unfolding: deep < shallow;
(c) per seed, median test error at the first step with train MSE < 3e-4: deep < shallow;
(d) mean over seeds of the median test error: deep <= 0.75 x shallow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import mean

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, select

SHALLOW, DEEP = 1, 3
DEPTH_KEY = "model.net.depth"
MEAN_RATIO_MAX = 0.75
PER_SEED = {
    "test_error": "test error",
    "effective_rank": "effective rank",
    "test_error_at_matched_loss": "test error at matched train loss",
}


def _value(runs: Sequence[Run], depth: int, seed: str, metric: str) -> float:
    found = [run for run in select(runs, **{DEPTH_KEY: depth, "seed": seed}) if run.status == "ok"]
    return found[0].get(f"analysis/{metric}") if found else math.nan


def _table(runs: Sequence[Run], seeds: list[str], metric: str, depths: list[int]) -> str:
    return "; ".join(
        f"seed {seed}: "
        + " / ".join(f"{_value(runs, depth, seed, metric):.3f}" for depth in depths)
        for seed in seeds
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("tensor_factorization")
    seeds = sorted({run.overrides.get("seed", "") for run in runs}, key=_seed_order)
    depths = sorted({int(run.overrides[DEPTH_KEY]) for run in runs if DEPTH_KEY in run.overrides})
    if not seeds or SHALLOW not in depths or DEEP not in depths:
        result.checks.append(
            Check(f"runs at depths {SHALLOW} and {DEEP}", f"depths {depths}, seeds {seeds}", False)
        )
        return result
    shown = "/".join(f"L{depth}" for depth in depths)
    for metric, label in PER_SEED.items():
        wins = [
            _value(runs, DEEP, seed, metric) < _value(runs, SHALLOW, seed, metric) for seed in seeds
        ]
        result.checks.append(
            Check(
                f"median {label} over the inits: depth {DEEP} < depth {SHALLOW} on every seed",
                f"{shown}: {_table(runs, seeds, metric, depths)} ({sum(wins)}/{len(seeds)})",
                all(wins),
            )
        )
    shallow = mean(_value(runs, SHALLOW, seed, "test_error") for seed in seeds)
    deep = mean(_value(runs, DEEP, seed, "test_error") for seed in seeds)
    result.checks.append(
        Check(
            f"mean over seeds of the median test error: depth {DEEP} <= {MEAN_RATIO_MAX} x "
            f"depth {SHALLOW}",
            f"L{DEEP} {deep:.3f}, L{SHALLOW} {shallow:.3f}, ratio {deep / shallow:.2f}",
            deep <= MEAN_RATIO_MAX * shallow,
        )
    )
    for depth in depths:
        train = [_value(runs, depth, seed, "train_mse") for seed in seeds]
        reached = [_value(runs, depth, seed, "matched_loss_reached") for seed in seeds]
        result.notes.append(
            f"depth {depth}: final train MSE (median per seed) "
            + ", ".join(f"{value:.1e}" for value in train)
            + "; share of inits that reached the matched loss "
            + ", ".join(f"{value:.1f}" for value in reached)
        )
    return result


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), seed) if seed.lstrip("-").isdigit() else (1 << 30, seed)
