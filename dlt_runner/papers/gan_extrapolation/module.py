"""GAN training through the runner's two optimisers, then knowledge extrapolation in ``analysis``.

Training (CPU scale; the paper edits a pretrained generator, reconstruction): non-saturating GAN
loss (Goodfellow et al. 2014, §3) with the R1 penalty on real data (Mescheder et al. 2018,
eq. 9), one discriminator step then one generator step per round, each with its own Adam.
A conditional generator (``label_dim`` > 0) is trained the same way on the standardised factor
labels: the conditional-GAN baseline standing in for label/causal-conditioned generators.

Analysis: the target knowledge is ``target_factor`` times its largest value in the training
data; each editor in ``editors`` edits the same latent codes (``edit_seed``), and is scored by
reach, the C2ST of the remaining knowledge against fresh original samples (all edited samples,
and the reached ones only), drift and fidelity (see ``analysis.py``). Editors: ``proj``,
``pull``, ``witness`` (PKD variants, ``editing.py``), ``naive`` (latent ascent), ``cgan_cf``
(conditional generator, same z and labels, target label set to the target: a counterfactual).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dlt_runner.core.datamodule import Batch
from dlt_runner.core.errors import ConfigError, unknown_choice
from dlt_runner.core.module import OptimizerFactory, RunnerModule
from dlt_runner.papers.gan_extrapolation import analysis as measure
from dlt_runner.papers.gan_extrapolation.editing import VARIANTS, EditResult, naive_ascent, pkd_edit
from dlt_runner.papers.gan_extrapolation.nets import BumpKnowledge

EDITORS = (*VARIANTS, "naive", "cgan_cf")


class KnowledgeExtrapolationGAN(RunnerModule):
    """Train G and D (``net``: a :class:`~.nets.GANPlayers`), then extrapolate one knowledge.

    Args:
        net: ``GANPlayers(generator, discriminator)``.
        optimizer: ``{discriminator: partial Adam, generator: partial Adam}``.
        heads: the knowledge heads K(x) (``nets.BumpKnowledge``), with ``target_index``.
        r1_weight: gamma of the R1 penalty gamma/2 E|grad_x D(x_real)|^2.
        editors: names from ``proj, pull, witness, naive`` (unconditional generator) and
            ``cgan_cf`` (conditional generator).
        target_factor: target = target_factor x the largest target knowledge in the data.
        n_edit: latent codes edited (and the size of each fresh original batch).
        iterations: PKD iterations (naive ascent stops earlier once every sample reached).
        step_request, trust_region, damping, pull_rate, witness_rate, witness_bandwidth: the
            PKD step (``editing.pkd_edit``); naive_step: the naive ascent's latent step.
        c2st_k: neighbours of the k-NN two-sample test.
        curve_every: record PKD's reach and C2ST every this many iterations (curves).
        edit_seed: latent codes are drawn from a generator seeded 1000 + edit_seed.
        **kwargs: the base module's options (``log_every_n_steps``, ``steps_per_round``, ...).
    """

    def __init__(
        self,
        net: nn.ModuleDict,
        optimizer: Mapping[str, OptimizerFactory],
        heads: nn.Module,
        r1_weight: float = 1.0,
        editors: Sequence[str] = ("proj", "naive"),
        target_factor: float = 1.10,
        n_edit: int = 1000,
        iterations: int = 300,
        step_request: float = 1e-3,
        trust_region: float = 0.05,
        damping: float = 1e-6,
        pull_rate: float = 0.2,
        witness_rate: float = 0.02,
        witness_bandwidth: float = 0.5,
        naive_step: float = 0.05,
        c2st_k: int = 25,
        curve_every: int = 25,
        edit_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, optimizer, **kwargs)
        self.heads = heads
        self.r1_weight = float(r1_weight)
        self.conditional = int(getattr(net["generator"], "label_dim", 0)) > 0
        self.editors = tuple(editors)
        for editor in self.editors:
            if editor not in EDITORS:
                raise ConfigError(unknown_choice("model.editors entry", editor, EDITORS))
            if (editor == "cgan_cf") != self.conditional:
                raise ConfigError(
                    f"editor {editor!r} needs "
                    + ("a conditional" if editor == "cgan_cf" else "an unconditional")
                    + " generator (model.net.generator.label_dim "
                    + ("> 0)" if editor == "cgan_cf" else "= 0)")
                )
        self.target_factor = float(target_factor)
        self.n_edit = int(n_edit)
        self.iterations = int(iterations)
        self.edit_options = {
            "step_request": float(step_request),
            "trust_region": float(trust_region),
            "damping": float(damping),
            "pull_rate": float(pull_rate),
            "witness_rate": float(witness_rate),
            "witness_bandwidth": float(witness_bandwidth),
        }
        self.naive_step = float(naive_step)
        self.c2st_k = int(c2st_k)
        self.curve_every = int(curve_every)
        self.edit_seed = int(edit_seed)

    @property
    def latent_dim(self) -> int:
        return int(self.net["generator"].latent_dim)

    # ------------------------------------------------------------------ training
    def _fake(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
        x = batch["x"]
        labels = batch["labels"] if self.conditional else None
        z = torch.randn(
            len(x), self.latent_dim, generator=generator, device=x.device, dtype=x.dtype
        )
        return self.net["generator"](z, labels), labels

    def loss(self, batch: Batch, optimizer_name: str) -> Any:
        fake, labels = self._fake(batch, self.step_generator())
        critic = self.net["discriminator"]
        if optimizer_name == "generator":
            return F.softplus(-critic(fake, labels)).mean()
        real = batch["x"].detach().requires_grad_(True)
        real_logits = critic(real, labels)
        (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        r1 = gradient.pow(2).sum(1).mean()
        loss = (
            F.softplus(-real_logits).mean()
            + F.softplus(critic(fake.detach(), labels)).mean()
            + 0.5 * self.r1_weight * r1
        )
        return loss, {"r1": r1.detach(), "real_score": torch.sigmoid(real_logits).mean().detach()}

    def evaluate(self, batch: Batch, split: str) -> Mapping[str, Tensor]:
        """Both players' losses without the R1 term, and the fakes' fidelity."""
        fake, labels = self._fake(batch, self.step_generator())
        critic = self.net["discriminator"]
        real_logits, fake_logits = critic(batch["x"], labels), critic(fake, labels)
        metrics = {
            "loss_discriminator": F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean(),
            "loss_generator": F.softplus(-fake_logits).mean(),
        }
        if isinstance(self.heads, BumpKnowledge):
            misfit = measure.fidelity(fake.double(), self.heads(fake).double())
            metrics["fidelity"] = torch.tensor(misfit)
        return metrics

    # ------------------------------------------------------------------ analysis
    def analysis(self, datamodule: Any) -> dict[str, Any]:
        """The editors' measurements; a smoke run (``debug=fast``) edits 100 codes 5 times."""
        if getattr(datamodule, "smoke", False):
            self.n_edit, self.iterations = min(self.n_edit, 100), min(self.iterations, 5)
            self.c2st_k, self.curve_every = min(self.c2st_k, 5), min(self.curve_every, 5)
        with torch.enable_grad():
            return self._extrapolate(datamodule)

    def _decode(self, labels: Tensor | None = None):
        generator = self.net["generator"]
        return lambda z: generator(z, labels)

    def _reference(self, datamodule: Any) -> Tensor:
        """The signals whose knowledge range the target extrapolates beyond: the data."""
        return datamodule.tensors("train")["x"].to(self.device)

    def _extrapolate(self, datamodule: Any) -> dict[str, Any]:
        train = datamodule.tensors("train")
        data = self._reference(datamodule)
        heads = self.heads
        target_index = int(heads.target_index)
        with torch.no_grad():
            data_knowledge = heads(data)
        target = self.target_factor * float(data_knowledge[:, target_index].max())
        rest = measure.rest_indices(data_knowledge.shape[1], target_index)
        scale = data_knowledge[:, rest].std(0)
        draws = torch.Generator(device=self.device).manual_seed(1000 + self.edit_seed)
        dtype = data.dtype

        def latents() -> Tensor:
            return torch.randn(
                self.n_edit, self.latent_dim, generator=draws, device=self.device, dtype=dtype
            )

        def labels() -> Tensor | None:
            if not self.conditional:
                return None
            index = torch.randint(len(data), (self.n_edit,), generator=draws, device=self.device)
            return train["labels"].to(self.device)[index]

        def knowledge_of(z: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
            with torch.no_grad():
                signals = self.net["generator"](z, y)
                return signals, heads(signals)

        z_start, y_start = latents(), labels()
        z_fresh, y_fresh = latents(), labels()
        start_signals, start = knowledge_of(z_start, y_start)
        _, fresh = knowledge_of(z_fresh, y_fresh)
        results: dict[str, Any] = {
            "target": target,
            "data_max": float(data_knowledge[:, target_index].max()),
            "reach_generator": measure.reach(start, target_index, target),
            "c2st_null": measure.rest_c2st(start, fresh, target_index, scale, self.c2st_k),
        }
        bumps = isinstance(heads, BumpKnowledge)
        if bumps:
            results["fidelity_data"] = measure.fidelity(data, data_knowledge)
            results["fidelity_generator"] = measure.fidelity(start_signals, start)

        for editor in self.editors:
            if editor == "cgan_cf":
                counterfactual = y_start.clone()
                standardised = datamodule.standardise(
                    torch.tensor([[0.0, target, 0.0]], dtype=torch.float64)
                )
                counterfactual[:, target_index] = float(standardised[0, target_index])
                edit = EditResult(z=z_start, knowledge=None, iterations=0)
                signals, edit.knowledge = knowledge_of(z_start, counterfactual)
            elif editor == "naive":
                edit = naive_ascent(
                    self._decode(), heads, z_start, target_index, target,
                    iterations=self.iterations, step=self.naive_step,
                )  # fmt: skip
            else:
                edit = pkd_edit(
                    self._decode(), heads, z_start, target_index, target, variant=editor,
                    iterations=self.iterations, original_rest=fresh[:, rest], rest_scale=scale,
                    record_every=self.curve_every, **self.edit_options,
                )  # fmt: skip
            if editor != "cgan_cf":
                signals, _ = knowledge_of(edit.z, None)
            results.update(self._score(editor, edit, signals, start, fresh, target, scale, bumps))
            if edit.history:
                results["curve_iteration"] = [float(i) for i, _ in edit.history]
                results[f"reach_curve_{editor}"] = [
                    measure.reach(k, target_index, target) for _, k in edit.history
                ]
                results[f"c2st_curve_{editor}"] = [
                    measure.rest_c2st(k, fresh, target_index, scale, self.c2st_k)
                    for _, k in edit.history
                ]
        return results

    def _score(
        self,
        editor: str,
        edit: EditResult,
        signals: Tensor,
        start: Tensor,
        fresh: Tensor,
        target: float,
        scale: Tensor,
        bumps: bool,
    ) -> dict[str, float]:
        target_index = int(self.heads.target_index)
        knowledge = edit.knowledge
        reached = knowledge[:, target_index] >= target
        scores = {
            f"reach_{editor}": measure.reach(knowledge, target_index, target),
            f"c2st_{editor}": measure.rest_c2st(knowledge, fresh, target_index, scale, self.c2st_k),
            f"c2st_reached_{editor}": measure.rest_c2st(
                knowledge[reached], fresh, target_index, scale, self.c2st_k
            ),
            f"drift_{editor}": measure.drift(knowledge, start, target_index, scale),
            f"iterations_{editor}": float(edit.iterations),
            f"target_mean_{editor}": float(knowledge[:, target_index].mean()),
        }
        if bumps:
            scores[f"fidelity_{editor}"] = measure.fidelity(signals, knowledge)
        if math.isnan(scores[f"c2st_reached_{editor}"]):
            scores.pop(f"c2st_reached_{editor}")
        return scores


class PretrainedKnowledgeExtrapolation(KnowledgeExtrapolationGAN):
    """Paper scale: PKD on a frozen pretrained generator read by pretrained attribute heads.

    Nothing is trained (``trainer.max_steps: 0``); ``net`` is ``GANPlayers(generator)`` with a
    :class:`~.nets.PretrainedGenerator` and ``heads`` a :class:`~.nets.PretrainedKnowledge`.
    The target is ``target_factor`` times the largest target attribute over the generator's
    samples at the datamodule's reference codes (:class:`~.data.LatentCodes`), decoded in
    batches of ``reference_batch_size`` (reconstruction).
    """

    def __init__(self, net: nn.ModuleDict, heads: nn.Module, reference_batch_size: int = 32,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(net=net, optimizer={}, heads=heads, **kwargs)
        self.reference_batch_size = int(reference_batch_size)
        for editor in self.editors:
            if editor not in VARIANTS + ("naive",):
                raise ConfigError(
                    unknown_choice("model.editors entry", editor, (*VARIANTS, "naive"))
                )

    def setup(self, stage: str) -> None:
        # Read both networks before anything runs: a missing file stops the run with a message
        # naming its key and paths.data_dir.
        self.net["generator"].load()
        self.heads.load()

    def configure_optimizers(self) -> None:
        return None

    def loss(self, batch: Batch, *optimizer_name: str) -> Tensor:
        raise ConfigError("a pretrained generator is not trained here: set trainer.max_steps=0")

    def _reference(self, datamodule: Any) -> Tensor:
        codes = datamodule.tensors("train")["z"].to(self.device)
        with torch.no_grad():
            return torch.cat(
                [self.net["generator"](chunk) for chunk in codes.split(self.reference_batch_size)]
            )
