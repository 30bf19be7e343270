"""``make bench``: per-step cost of training through the runner vs a plain PyTorch loop.

For each case, the same config builds the data tensors, the model (its ``nn.Module`` and its
``loss``), the optimiser and its schedule. The runner trains it with ``run(cfg)`` (default
callbacks and loggers: W&B offline + CSV, checkpoints, validation); the plain loop trains a
fresh copy over the same tensors for the same number of optimiser steps, drawing minibatches
by index. Runner and plain loop alternate ``--repeats`` times and the medians are compared,
so a busy machine slows both alike. The table goes to stdout and ``BENCHMARKS.md``.

    python -m benchmarks.bench [--repeats 3] [--only imde_pendulum]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlt_runner import CONFIG_DIR

#: ``BENCHMARKS.md`` from this line on is not this script's table: it is kept as it is.
KEPT = "<!-- kept by make bench: -->"


@dataclass
class Case:
    """One benchmark row: an experiment and the overrides that size it."""

    name: str
    experiment: str
    overrides: list[str] = field(default_factory=list)
    note: str = ""


CASES = [
    Case("imde_pendulum", "imde/pendulum", ["test=false"]),
    Case("ntk_reverse_digits", "ntk_reverse/digits", ["test=false"]),
    Case("informed_wide_synthetic", "informed_wide/synthetic", ["test=false"]),
    Case(
        "signal_prop_tka_digits",
        "signal_prop_tka/digits",
        # 40 passes (10 Lightning epochs of 4), validated once at the end (as the experiment
        # does after its 8 passes)
        [
            "test=false",
            "model.profile_every_n_epochs=0",
            "trainer.max_steps=760",
            "trainer.check_val_every_n_epoch=10",
        ],
    ),
    # 1,500 pre-training steps (the experiment makes 300) so per-step costs dominate.
    Case(
        "gcv_rmt_digits",
        "gcv_rmt/digits",
        [
            "test=false",
            "model.representations=[raw_linear]",
            "trainer.max_steps=1500",
            "trainer.check_val_every_n_epoch=30",
        ],
    ),
    Case("clofnet_es5", "clofnet/es5", ["test=false", "trainer.max_steps=400"]),
    Case("egnn_es5", "clofnet/es5", ["test=false", "model=clofnet/egnn", "trainer.max_steps=400"]),
    Case("scale_invariant_digits", "scale_invariant/digits", ["test=false"]),
    # The plain loop has no test split: the runner's per-step matched-loss tracking is off too
    # (its curves every 100 steps stay on).
    Case(
        "tensor_factorization_rank1",
        "tensor_factorization/rank1_completion",
        ["test=false", "model.matched_loss=null", "trainer.max_steps=2000"],
    ),
    # FGSM adversarial training: two forward/backward passes per step, width 8 (the experiment).
    Case("convresnet_smooth_digits", "convresnet_smooth/digits", ["test=false"]),
    # The learned 2-neuron CFNN: 3,000 Adam steps of 32 weight samples each, validated by a
    # 101-vote plurality every 1,000 steps.
    Case("coin_flipping_ball", "coin_flipping/ball", ["test=false"]),
    # Edge-popup scores of 9 frozen random conv nets (widths 8/32/64, 3 seeds) trained side by
    # side: 285 steps of batch 64 on the digits.
    Case("lottery_conv_popup", "lottery_conv/digits", ["test=false"]),
    # Intrinsic-only training: phi_f (k = 8) and the output affine map learn over a frozen conv
    # phi_in and decoder, 800 steps of batch 64. Random phi_in: the pre-training loop before fit
    # is not part of the per-step cost compared here.
    Case(
        "intrinsic_params_digits", "intrinsic_params/digits", ["test=false", "model.phi_in=random"]
    ),
    # SimCLR on the hypercube: the MLP encoder, 1,000 steps of 2 x 512 views; held-out loss and
    # linear probe once, at the end (the experiment validates every 128 steps).
    Case(
        "contrastive_bias_hypercube",
        "contrastive_bias/hypercube",
        ["model=contrastive_bias/mlp", "trainer.check_val_every_n_epoch=1000"],
    ),
    # Four copies of the cubic patch CNN (patch drop at keep 1, 0.75, 0.5, 0.25) on one full
    # batch of 300 multi-view images, 2,000 GD steps, view alignment every 100 steps.
    Case("augmentation_features_cubic", "augmentation_features/multiview_cubic", ["test=false"]),
    # Two players (named optimisers): a round is a D step with R1 (double backward), then a G
    # step, each on its own minibatch; the editing analysis is shrunk (it is not timed).
    Case(
        "gan_extrapolation_bumps",
        "gan_extrapolation/bumps",
        [
            "trainer.max_steps=1000",
            "model.editors=[proj]",
            "model.iterations=2",
            "model.n_edit=100",
            "model.c2st_k=5",
        ],
    ),
]

_DTYPES = {
    "64-true": torch.float64,
    "64": torch.float64,
    "32-true": torch.float32,
    "32": torch.float32,
}


def _compose(case: Case, run_dir: Path):
    from hydra import compose

    return compose(
        "config",
        overrides=[
            f"experiment={case.experiment}",
            f"paths.run_dir={run_dir}",
            f"paths.root_dir={run_dir}",
            # generated datasets (e.g. N-body simulations) are reused across repeats
            f"paths.cache_dir={Path.cwd() / '.cache' / 'dlt_runner'}",
            "threads=1",
            *case.overrides,
        ],
    )


def runner_ms_per_step(case: Case) -> tuple[float, float, int]:
    """Train through ``run(cfg)``; the FitTimer times the training loop (validation included)."""
    from dlt_runner.run import Runtime, run

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _compose(case, Path(tmp))
        record = run(cfg, Runtime(run_dir=Path(tmp)))
    timing = record["timing"]
    steps = timing["steps"]
    return 1e3 * timing["fit_cpu_seconds"] / steps, 1e3 * timing["fit_seconds"] / steps, steps


def plain_ms_per_step(case: Case, steps: int) -> tuple[float, float]:
    """The same model, loss, optimiser, schedule and tensors in a hand-written loop."""
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _compose(case, Path(tmp))
        pl.seed_everything(int(cfg.seed), verbose=False)
        datamodule = instantiate(cfg.data)
        datamodule.prepare()
        module = instantiate(cfg.model).to(_DTYPES.get(str(cfg.trainer.precision), torch.float32))
    train = datamodule.splits["train"]
    n = len(next(iter(train.values())))
    batch_size = datamodule.batch_size or n
    if module.optimizer_names:
        return _plain_rounds(module, train, batch_size, steps)
    optimizer = module.optimizer_factory(module.trainable_parameters())
    scheduler = module.scheduler_factory(optimizer) if module.scheduler_factory else None
    generator = torch.Generator().manual_seed(0)
    order, position = torch.randperm(n, generator=generator), 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        if batch_size < n:
            if position + batch_size > n:
                order, position = torch.randperm(n, generator=generator), 0
            index = order[position : position + batch_size]
            position += batch_size
            batch = {name: tensor[index] for name, tensor in train.items()}
        else:
            batch = train
        optimizer.zero_grad(set_to_none=True)
        loss = module.loss(batch)
        loss = loss[0] if isinstance(loss, tuple) else loss
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    cpu = time.process_time() - started_cpu
    return 1e3 * cpu / steps, 1e3 * (time.perf_counter() - started) / steps


def _plain_rounds(module, train, batch_size: int, rounds: int) -> tuple[float, float]:
    """Several named optimisers (a GAN): each round steps them in the module's order, each on a
    fresh minibatch, with the other players' parameters frozen while one player's loss is
    differentiated (as the runner does)."""
    n = len(next(iter(train.values())))
    players = {
        name: (
            module.optimizer_factory[name](module.trainable_parameters(name)),
            module.trainable_parameters(name),
        )
        for name in module.optimizer_names
    }
    generator = torch.Generator().manual_seed(0)
    order, position = torch.randperm(n, generator=generator), 0
    started, started_cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        for (name,) in module.round.stages:
            if position + batch_size > n:
                order, position = torch.randperm(n, generator=generator), 0
            index = order[position : position + batch_size]
            position += batch_size
            batch = {key: tensor[index] for key, tensor in train.items()}
            for other, (_, parameters) in players.items():
                for parameter in parameters:
                    parameter.requires_grad_(other == name)
            optimizer = players[name][0]
            optimizer.zero_grad(set_to_none=True)
            loss = module.loss(batch, name)
            loss = loss[0] if isinstance(loss, tuple) else loss
            loss.backward()
            optimizer.step()
    cpu = time.process_time() - started_cpu
    return 1e3 * cpu / rounds, 1e3 * (time.perf_counter() - started) / rounds


def measure(case: Case, repeats: int) -> dict[str, float]:
    """Medians over repeats after one discarded warm-up; the order alternates per repeat.

    The first training in a process pays one-time costs (allocator, kernels' first calls), so
    the warm-up round keeps them out of both sides; alternating which side runs first keeps
    any drift of the machine from favouring one. CPU time is the primary measure.
    """
    names = ("runner_cpu", "runner_wall", "plain_cpu", "plain_wall")
    samples: dict[str, list[float]] = {name: [] for name in names}
    _, _, steps = runner_ms_per_step(case)  # warm-up, discarded
    for repeat in range(repeats):
        if repeat % 2:
            plain_cpu, plain_wall = plain_ms_per_step(case, steps)
            runner_cpu, runner_wall, steps = runner_ms_per_step(case)
        else:
            runner_cpu, runner_wall, steps = runner_ms_per_step(case)
            plain_cpu, plain_wall = plain_ms_per_step(case, steps)
        values = (runner_cpu, runner_wall, plain_cpu, plain_wall)
        for name, value in zip(names, values, strict=True):
            samples[name].append(value)
    row = {name: statistics.median(values) for name, values in samples.items()}
    row["steps"] = steps
    row["ratio"] = row["runner_cpu"] / row["plain_cpu"]
    row["wall_ratio"] = row["runner_wall"] / row["plain_wall"]
    return row


def markdown(rows: dict[str, dict[str, float]], repeats: int, notes: dict[str, str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Per optimiser step, training through the runner (`run(cfg)`: Lightning, default",
        "callbacks, W&B offline + CSV loggers, validation) vs a plain PyTorch loop over the same",
        "tensors, model, loss, optimiser and schedule; one torch thread; median of "
        f"{repeats} repeats after a warm-up,",
        "in alternating order. The ratio is of CPU time (process time: on a shared machine it",
        "counts the work, not the waiting); wall-clock figures are given beside it. Repeated",
        "runs on a 2-core VM moved single ratios by up to about ±0.1: read smaller differences",
        "as noise.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}. Regenerate with `make bench`.",
        "",
        "| case | steps | runner ms/step | plain ms/step | ratio (CPU) "
        "| wall ms/step runner / plain | ratio (wall) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['steps']} | {row['runner_cpu']:.3f} | {row['plain_cpu']:.3f} | "
            f"**{row['ratio']:.3f}** | {row['runner_wall']:.3f} / {row['plain_wall']:.3f} | "
            f"{row['wall_ratio']:.3f} |"
        )
    lines += ["", *(f"- {name}: {note}" for name, note in notes.items() if note)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="case names to run")
    parser.add_argument("--output", default="BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from hydra import initialize_config_dir

    cases = [case for case in CASES if not args.only or case.name in args.only]
    rows = {}
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for case in cases:
            rows[case.name] = measure(case, args.repeats)
            row = rows[case.name]
            print(
                f"{case.name}: runner {row['runner_cpu']:.3f} ms/step, plain "
                f"{row['plain_cpu']:.3f} ms/step (CPU), ratio {row['ratio']:.3f}",
                flush=True,
            )
    text = markdown(rows, args.repeats, {case.name: case.note for case in cases})
    print(text)
    output = Path(args.output)
    previous = output.read_text() if output.exists() else ""
    if KEPT in previous:  # measured by other scripts (fixed cost per job, claim grids)
        text += "\n" + previous[previous.index(KEPT) :]
    output.write_text(text)


if __name__ == "__main__":
    main()
