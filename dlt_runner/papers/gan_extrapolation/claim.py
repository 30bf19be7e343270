"""The knowledge-extrapolation claim at CPU scale (reconstruction), judged on the runs of
``conf/claim/gan_extrapolation.yaml``.

PKD widens generated bumps past the data's largest width while their position and height stay
nearly indistinguishable from the original generator's (k-NN C2ST), far better than naive latent
ascent:

1. reach(PKD) >= 0.65;
2. C2ST(PKD) <= 0.60 on the remaining knowledge of all edited samples;
3. C2ST(naive) >= C2ST(PKD) + 0.10;
4. on the samples that reached the target only: C2ST(PKD) <= C2ST(naive) - 0.05.

Every number is a mean over the grid's seeds (three GANs). A single GAN's C2ST(PKD) ranged from
0.51 to 0.70 over seeds 5-7, 20-22, 41-43 and 77-79 (a few generators tie width to position and
height, and PKD's edits of them drift), and the means of three from 0.542 to 0.595: the 0.60
bound is close. Training the GAN twice as long, or PKD steps with a 2.5x smaller trust region,
did not lower the drift of those generators.

The conditional-GAN counterfactual and any other PKD variants in the runs are reported as notes
(the paper's "better than causal GANs" is not reproduced at this scale).
"""

from __future__ import annotations

from collections.abc import Sequence

from dlt_runner.sweeps.claims import Check, Verdict
from dlt_runner.sweeps.runs import Run, mean_metric, select

REACH_MIN = 0.65
C2ST_MAX = 0.60
NAIVE_GAP_MIN = 0.10
REACHED_GAP_MIN = 0.05


def _row(runs: Sequence[Run], editor: str) -> str:
    def value(name: str) -> float:
        return mean_metric(runs, f"analysis/{name}_{editor}")

    return (
        f"{editor}: reach {value('reach'):.3f}, C2ST {value('c2st'):.3f} / reached "
        f"{value('c2st_reached'):.3f}, drift {value('drift'):.3f} sd, fidelity "
        f"{value('fidelity'):.3f}"
    )


def verdict(runs: Sequence[Run]) -> Verdict:
    result = Verdict("gan_extrapolation")
    main = select(runs, sweep="main", model="gan_extrapolation/gan")
    reach = mean_metric(main, "analysis/reach_proj")
    c2st = mean_metric(main, "analysis/c2st_proj")
    c2st_naive = mean_metric(main, "analysis/c2st_naive")
    reached = mean_metric(main, "analysis/c2st_reached_proj")
    reached_naive = mean_metric(main, "analysis/c2st_reached_naive")
    n = f"(n={len(main)})"
    result.checks += [
        Check(
            f"PKD extrapolates width: reach(PKD) >= {REACH_MIN}",
            f"reach {reach:.3f}, target {mean_metric(main, 'analysis/target'):.4f} vs data max "
            f"{mean_metric(main, 'analysis/data_max'):.4f} {n}",
            reach >= REACH_MIN,
        ),
        Check(
            f"remaining knowledge stays indistinguishable: C2ST(PKD) <= {C2ST_MAX}",
            f"C2ST {c2st:.3f}; two fresh original batches "
            f"{mean_metric(main, 'analysis/c2st_null'):.3f} {n}",
            c2st <= C2ST_MAX,
        ),
        Check(
            f"naive latent ascent does not: C2ST(naive) >= C2ST(PKD) + {NAIVE_GAP_MIN}",
            f"naive {c2st_naive:.3f}, PKD {c2st:.3f}",
            c2st_naive >= c2st + NAIVE_GAP_MIN,
        ),
        Check(
            f"on reached samples only: C2ST(PKD) <= C2ST(naive) - {REACHED_GAP_MIN}",
            f"PKD {reached:.3f}, naive {reached_naive:.3f}",
            reached <= reached_naive - REACHED_GAP_MIN,
        ),
    ]
    per_seed = ", ".join(
        f"seed {run.overrides.get('seed', '?')}: reach {run.get('analysis/reach_proj'):.3f}, "
        f"C2ST {run.get('analysis/c2st_proj'):.3f}"
        for run in main
    )
    result.notes.append(f"PKD per GAN ({per_seed}); the checks read the means")
    for editor in ("proj", "pull", "witness", "naive"):
        if any(f"analysis/reach_{editor}" in run.metrics for run in main):
            result.notes.append(_row(main, editor))
    cgan = select(runs, sweep="main", model="gan_extrapolation/cgan")
    if cgan:

        def gap(name: str) -> float:
            return mean_metric(main, f"analysis/{name}_proj") - mean_metric(
                cgan, f"analysis/{name}_cgan_cf"
            )

        gaps = ", ".join(f"{name} {gap(name):+.3f}" for name in ("reach", "c2st", "c2st_reached"))
        result.notes.append(
            _row(cgan, "cgan_cf")
            + f". PKD minus conditional GAN: {gaps}: PKD "
            + ("reaches further" if gap("reach") > 0.05 else "does not reach further")
            + (", its C2ST is lower" if gap("c2st") < -0.02 else ", its C2ST is no lower")
            + ". Not a check: the paper's edge over causal GANs is not established at this "
            "scale, and the conditional GAN saw the factor labels in training (PKD never does)"
        )
    result.notes.append(
        "fidelity (bump misfit): data "
        f"{mean_metric(main, 'analysis/fidelity_data'):.3f}, generator "
        f"{mean_metric(main, 'analysis/fidelity_generator'):.3f}"
    )
    return result
