"""Informed learning by wide nets: objective, knowledge, NTK reference, data, module, claim."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.nn import MLP
from dlt_runner.papers.informed_wide.claim import interior_gain, verdict
from dlt_runner.papers.informed_wide.data import InformedRegressionData
from dlt_runner.papers.informed_wide.knowledge import (
    FIRST_DIRECTION,
    KNOWLEDGE_ERRORS,
    KNOWLEDGE_TERMS,
    SECOND_DIRECTION,
    FunctionKnowledge,
    SingleIndexKnowledge,
    blend_labels,
    blended_targets,
    first_term,
    get_knowledge_term,
    informed_loss,
    knowledge_labels,
    truth,
)
from dlt_runner.papers.informed_wide.module import InformedWideModule
from dlt_runner.papers.informed_wide.nets import (
    CentredNet,
    gradient_descent_predictions,
    gradient_descent_spectral_factor,
    infinite_width_ntk,
)
from dlt_runner.sweeps.runs import Run
from dlt_runner.theory.entk import empirical_ntk

from helpers import train_full_batch

F64 = torch.float64
W1 = torch.tensor(FIRST_DIRECTION, dtype=F64)
W2 = torch.tensor(SECOND_DIRECTION, dtype=F64)


def inputs(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed), dtype=F64) * 0.9


def toy_problem(n: int = 12, n_labelled: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    """Labelled points first, all points informed, as the data module builds them."""
    x = inputs(n, seed)
    labelled = torch.arange(n) < n_labelled
    noise = 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    return {
        "x": x,
        "y": torch.where(labelled, truth(x) + noise, 0.0),
        "labelled": labelled,
        "informed": torch.ones(n, dtype=torch.bool),
        "knowledge": knowledge_labels(x),
    }


def wide_module(width: int = 64, **kwargs) -> InformedWideModule:
    net = CentredNet(MLP([5, width, 1], "relu", "ntk", weight_std=1.0, bias_std=[1.0, 0.0]))
    kwargs.setdefault("reference_steps", 50)
    return InformedWideModule(net.to(F64), lambda p: torch.optim.SGD(p, lr=0.5), **kwargs)


# --- the synthetic task and knowledge ------------------------------------------------------------


def test_missing_term_knowledge_is_the_default_g_and_scale_zero_is_the_truth():
    x = inputs(50)
    # f* + (-second term) = first term up to one rounding of (a + b) - b
    assert torch.allclose(knowledge_labels(x, "missing_term", 1.0), first_term(x), atol=1e-15)
    assert torch.allclose(first_term(x), torch.sin(x @ W1), atol=0)
    assert torch.equal(knowledge_labels(x, "missing_term", 0.0), truth(x))
    expected = torch.sin(x @ W1) + 0.5 * torch.cos(1.5 * (x @ W2))
    assert torch.allclose(truth(x), expected, atol=1e-15)


def test_knowledge_error_matches_its_closed_form():
    # u = 1.5 w2·x ~ N(0, v), v = 1.5^2 |w2|^2 0.8; E(g - f*)^2 = s^2 E[0.25 cos^2 u]
    # = s^2 (1 + exp(-2 v)) / 8. Per unit s^2, the sample mean of 0.25 cos^2 (std <= 0.125) over
    # 4e5 points has standard error <= 2e-4, so 1e-3 is a 5-sigma tolerance.
    generator = torch.Generator().manual_seed(0)
    x = math.sqrt(0.8) * torch.randn(400_000, 5, generator=generator, dtype=F64)
    variance = 1.5**2 * float(W2 @ W2) * 0.8
    for scale in (1.0, 1.5):
        measured = torch.mean((knowledge_labels(x, "missing_term", scale) - truth(x)) ** 2)
        assert measured / scale**2 == pytest.approx((1 + math.exp(-2 * variance)) / 8, abs=1e-3)
    offset = knowledge_labels(x[:10], "offset", 2.0) - truth(x[:10])
    assert torch.allclose(offset, torch.full((10,), 0.7, dtype=F64), atol=1e-15)


def test_unknown_knowledge_names_list_the_valid_ones():
    with pytest.raises(
        ConfigError, match="unknown knowledge 'missing'; choose one of: missing_term, offset"
    ):
        knowledge_labels(inputs(2), "missing")
    with pytest.raises(
        ConfigError, match="unknown knowledge term 'labels'; choose one of: function, single_index"
    ):
        get_knowledge_term("labels")
    assert list(KNOWLEDGE_ERRORS) == ["missing_term", "offset"]
    assert {n: t.function_valued for n, t in KNOWLEDGE_TERMS.items()} == {
        "function": True,
        "single_index": False,
    }


def test_single_index_penalty_is_zero_on_functions_of_w1_and_exact_on_the_truth():
    x = inputs(20)
    batch = {"x": x}
    term = SingleIndexKnowledge()
    on_ridge = term.squared_residual(lambda z: torch.sin(z @ W1) ** 3, batch, None)
    assert on_ridge.abs().max() < 1e-28
    # grad f* = cos(w1·x) w1 - 0.75 sin(1.5 w2·x) w2; only the w2 part survives the projection.
    unit = W1 / W1.norm()
    w2_orthogonal = W2 - (W2 @ unit) * unit
    expected = (0.75 * torch.sin(1.5 * (x @ W2))) ** 2 * (w2_orthogonal @ w2_orthogonal)
    assert torch.allclose(term.squared_residual(truth, batch, None), expected, atol=1e-13)


# --- the informed loss and its weighted least-squares form -----------------------------------


def test_informed_loss_is_the_weighted_sum_of_label_and_knowledge_losses():
    batch = toy_problem()
    f = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=F64)
    lam = 0.3
    residual = FunctionKnowledge().squared_residual(None, batch, f)
    parts = informed_loss(
        (f - batch["y"]) ** 2, batch["labelled"], residual, batch["informed"], lam
    )
    label = torch.mean((f[:5] - batch["y"][:5]) ** 2)
    knowledge = torch.mean((f - batch["knowledge"]) ** 2)
    assert torch.allclose(parts.label, label, atol=1e-15)
    assert torch.allclose(parts.knowledge, knowledge, atol=1e-15)
    assert torch.allclose(parts.total, (1 - lam) * label + lam * knowledge, atol=1e-15)


def test_blended_targets_rewrite_the_loss_up_to_a_constant():
    # Both sides are quadratics in f with the same Hessian iff their difference is constant.
    batch = toy_problem()
    generator = torch.Generator().manual_seed(4)
    for lam in (0.0, 0.4, 1.0):
        weights, targets = blended_targets(
            batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], lam
        )
        differences = []
        for _ in range(3):
            f = torch.randn(12, generator=generator, dtype=F64)
            loss = informed_loss(
                (f - batch["y"]) ** 2,
                batch["labelled"],
                (f - batch["knowledge"]) ** 2,
                batch["informed"],
                lam,
            ).total
            differences.append(loss - torch.sum(weights * (f - targets) ** 2))
        assert max(differences) - min(differences) < 1e-13
    weights, targets = blended_targets(
        batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], 0.0
    )
    assert torch.equal(weights[5:], torch.zeros(7, dtype=F64))
    assert torch.allclose(targets[:5], batch["y"][:5], atol=1e-15)
    _, targets = blended_targets(
        batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], 1.0
    )
    assert torch.allclose(targets, batch["knowledge"], atol=1e-15)


def test_blend_labels_interpolates_labels_and_knowledge():
    y, g = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])
    assert blend_labels(y, g, 0.0) is y
    assert torch.equal(blend_labels(y, g, 0.25), torch.tensor([1.5, 1.5]))


def test_interior_gain():
    assert interior_gain([0, 0.5, 1], [0.4, 0.2, 0.5]) == pytest.approx(0.5)
    assert interior_gain([0, 1], [0.4, 0.5]) is None


# --- the centred net and its infinite-width reference ----------------------------------------


def test_centred_net_starts_at_zero_and_trains_only_the_base():
    torch.manual_seed(0)
    net = CentredNet(MLP([5, 32, 1], "relu", "ntk", bias_std=[1.0, 0.0])).to(F64)
    x = inputs(7)
    assert torch.equal(net(x), torch.zeros(7, 1, dtype=F64))
    trainable = [name for name, p in net.named_parameters() if p.requires_grad]
    assert trainable and all(name.startswith("base.") for name in trainable)
    with torch.no_grad():
        net.base.layers[1].weight.add_(1.0)
    assert net(x).abs().max() > 0
    memoised = net.initial_output(x)
    assert net.initial_output(x) is memoised
    x.mul_(2.0)  # in place: the memo must notice
    assert torch.allclose(net.initial_output(x), net.initial(x), atol=0)
    net.load_state_dict({k: v + 1 for k, v in net.state_dict().items()})
    assert torch.allclose(net.initial_output(x), net.initial(x), atol=0)


def test_spectral_factor_matches_the_geometric_sum():
    eigenvalues = torch.tensor([0.0, 1e-12, 1e-3, 0.3, 0.9], dtype=F64)
    lr, steps = 0.75, 40
    factor = gradient_descent_spectral_factor(eigenvalues, lr, steps)
    # phi = 2 lr sum_{r < K} (1 - 2 lr e)^r, summed term by term
    direct = torch.stack(
        [2 * lr * sum((1 - 2 * lr * e) ** r for r in range(steps)) for e in eigenvalues]
    )
    assert torch.allclose(factor, direct, rtol=1e-12, atol=0)
    converged = gradient_descent_spectral_factor(eigenvalues, lr, None)
    assert converged[0] == 0 and torch.allclose(converged[3:], 1 / eigenvalues[3:], rtol=1e-15)


def test_closed_form_equals_gradient_descent_on_a_model_linear_in_its_parameters():
    # A random-features readout f(x) = phi(x)·v / sqrt(m), v_0 = 0, is its own linearisation with
    # NTK phi phi^T / m, so K steps of GD on the informed loss are the closed form exactly.
    batch = toy_problem()
    test_x = inputs(9, seed=5)
    width = 40
    projection = torch.randn(5, width, generator=torch.Generator().manual_seed(6), dtype=F64)

    def features(x):
        return torch.relu(x @ projection) / math.sqrt(width)

    readout = torch.zeros(width, dtype=F64, requires_grad=True)
    lam, lr, steps = 0.35, 0.6, 30
    optimizer = torch.optim.SGD([readout], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        f = features(batch["x"]) @ readout
        informed_loss(
            (f - batch["y"]) ** 2,
            batch["labelled"],
            (f - batch["knowledge"]) ** 2,
            batch["informed"],
            lam,
        ).total.backward()
        optimizer.step()
    weights, targets = blended_targets(
        batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], lam
    )
    kernel = features(batch["x"]) @ features(batch["x"]).T
    predicted = gradient_descent_predictions(
        kernel, features(test_x) @ features(batch["x"]).T, weights, targets, lr, steps
    )
    assert torch.allclose(predicted, features(test_x) @ readout.detach(), rtol=0, atol=1e-12)


def test_converged_reference_is_kernel_regression_on_blended_targets():
    batch = toy_problem()
    mlp = MLP([5, 8, 1], "relu", "ntk", bias_std=[1.0, 0.0])
    kernel = infinite_width_ntk(mlp, batch["x"])
    test_kernel = infinite_width_ntk(mlp, inputs(6, seed=2), batch["x"])
    weights, targets = blended_targets(
        batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], 0.5
    )
    converged = gradient_descent_predictions(kernel, test_kernel, weights, targets, 0.5, None)
    expected = test_kernel @ torch.linalg.solve(kernel, targets)
    assert torch.allclose(converged, expected, rtol=1e-8, atol=1e-10)
    # at lambda = 0 the unlabelled points drop out: kernel regression on the labels alone
    weights, targets = blended_targets(
        batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], 0.0
    )
    converged = gradient_descent_predictions(kernel, test_kernel, weights, targets, 0.5, None)
    labels_only = test_kernel[:, :5] @ torch.linalg.solve(kernel[:5, :5], batch["y"][:5])
    assert torch.allclose(converged, labels_only, rtol=1e-8, atol=1e-10)


def test_infinite_width_ntk_matches_a_wide_nets_empirical_ntk():
    # The empirical NTK of a width-m net fluctuates by O(1/sqrt(m)) around the analytic one:
    # about 1.5% at m = 4096, so a 6% relative tolerance is a 4-sigma check of the mapping
    # MLP config (depth, per-layer sigma_w, sigma_b, missing readout bias) -> kernel.
    torch.manual_seed(0)
    x = inputs(6)
    for sizes, bias_std in (([5, 4096, 1], [1.0, 0.0]), ([5, 2048, 2048, 1], [0.5, 1.0, 0.3])):
        mlp = MLP(sizes, "relu", "ntk", weight_std=1.2, bias_std=bias_std).to(F64)
        empirical = empirical_ntk(mlp, x)
        analytic = infinite_width_ntk(mlp, x)
        assert torch.linalg.norm(empirical - analytic) < 0.06 * torch.linalg.norm(analytic)


def test_infinite_width_ntk_refuses_architectures_it_does_not_know():
    with pytest.raises(ValueError, match="choose one of: relu, erf"):
        infinite_width_ntk(MLP([5, 8, 1], "tanh", "ntk"), inputs(2))
    with pytest.raises(ValueError, match="parameterization 'ntk'"):
        infinite_width_ntk(MLP([5, 8, 1], "relu", "standard"), inputs(2))


def test_wide_net_tracks_its_reference_more_closely_as_width_grows():
    # Lazy training: a width-m net's predictions deviate from the infinite-width GD closed form
    # by O(1/sqrt(m)), so 16x the width should shrink the deviation ~4x; one init's deviation
    # is noisy, so it is averaged over 4 inits (2x is the asserted margin).
    batch = toy_problem(n=20, n_labelled=8)
    test_x = inputs(30, seed=7)
    lam, lr, steps = 0.5, 0.5, 100
    deviations = {256: 0.0, 4096: 0.0}
    for width, seed in itertools.product(deviations, range(4)):
        torch.manual_seed(seed)
        module = wide_module(width, knowledge_weight=lam)
        optimizer = torch.optim.SGD(module.trainable_parameters(), lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            module.loss(batch)[0].backward()
            optimizer.step()
        weights, targets = blended_targets(
            batch["y"], batch["labelled"], batch["knowledge"], batch["informed"], lam
        )
        mlp = module.net.base
        reference = gradient_descent_predictions(
            infinite_width_ntk(mlp, batch["x"]),
            infinite_width_ntk(mlp, test_x, batch["x"]),
            weights,
            targets,
            lr,
            steps,
        )
        with torch.no_grad():
            deviation = torch.linalg.norm(module.predict(test_x) - reference)
        deviations[width] += float(deviation / torch.linalg.norm(reference)) / 4
    assert deviations[4096] < 0.1
    assert deviations[256] > 2 * deviations[4096]


# --- data ------------------------------------------------------------------------------------


def test_data_splits_masks_and_seeding():
    data = InformedRegressionData(
        n_labelled=30,
        n_unlabelled=50,
        n_val=20,
        n_test=40,
        label_noise=0.4,
        knowledge_error_scale=1.5,
        seed=3,
    )
    train, test = data.tensors("train"), data.tensors("test")
    assert train["x"].shape == (80, 5) and test["x"].shape == (40, 5)
    assert train["labelled"].tolist() == [True] * 30 + [False] * 50
    assert train["informed"].all() and test["labelled"].all()
    assert torch.equal(train["y"][30:], torch.zeros(50))
    assert torch.allclose(
        train["knowledge"],
        knowledge_labels(train["x"].double(), "missing_term", 1.5).float(),
        atol=1e-6,
    )
    assert torch.allclose(test["truth"], truth(test["x"].double()).float(), atol=1e-6)
    same = InformedRegressionData(n_labelled=30, n_unlabelled=50, n_val=20, n_test=40, seed=3)
    assert torch.equal(same.tensors("train")["x"], train["x"])
    other = InformedRegressionData(n_labelled=30, n_unlabelled=50, n_val=20, n_test=40, seed=4)
    assert not torch.equal(other.tensors("train")["x"], train["x"])
    disjoint = InformedRegressionData(
        n_labelled=30, n_unlabelled=50, n_test=1, knowledge_on_labelled=False
    )
    assert disjoint.tensors("train")["informed"].tolist() == [False] * 30 + [True] * 50


def test_smoke_runs_build_small_splits():
    data = InformedRegressionData(n_labelled=100, n_unlabelled=1000, n_test=5000)
    data.smoke = True  # what setup() sets under debug=fast
    train = data.tensors("train")
    assert train["labelled"].sum() == 32 and len(train["x"]) == 64
    assert len(data.tensors("test")["x"]) == 32


def test_data_label_noise_has_the_configured_variance():
    # sample variance of 20,000 Gaussian draws: relative standard error sqrt(2 / n) = 1%
    data = InformedRegressionData(
        n_labelled=20_000, n_unlabelled=0, n_val=0, n_test=1, label_noise=0.5, dtype="float64"
    )
    train = data.tensors("train")
    assert torch.var(train["y"] - train["truth"]).item() == pytest.approx(0.25, rel=0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"knowledge": "exact"}, "unknown knowledge 'exact'; choose one of: missing_term, offset"),
        ({"n_labelled": -1}, "data.n_labelled must be >= 0"),
        ({"n_test": 0}, "data.n_test must be a positive integer"),
        ({"label_noise": -0.1}, "data.label_noise must be >= 0"),
    ],
)
def test_data_rejects_bad_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        InformedRegressionData(**kwargs)


# --- module ----------------------------------------------------------------------------------


@pytest.mark.parametrize("knowledge", ["function", "single_index"])
def test_module_loss_decreases_and_logs_its_parts(knowledge):
    torch.manual_seed(0)
    module = wide_module(
        knowledge=knowledge,
        knowledge_weight=0.5,
        reference_kernel="analytic" if knowledge == "function" else "none",
    )
    batch = toy_problem()
    losses = train_full_batch(module, batch, 20)
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        loss, extras = module.loss(batch)
    assert float(loss) == pytest.approx(
        0.5 * float(extras["loss_label"]) + 0.5 * float(extras["loss_knowledge"]), rel=1e-12
    )


def test_label_only_module_ignores_knowledge():
    module = wide_module(knowledge_weight=0.0)
    batch = toy_problem()
    with torch.no_grad():
        loss, extras = module.loss(batch)
        shifted, _ = module.loss({**batch, "knowledge": batch["knowledge"] + 1.0})
    assert float(loss) == float(extras["loss_label"]) == float(shifted)
    assert float(extras["loss_knowledge"]) > 0  # still reported, with weight 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"knowledge_weight": 1.5}, r"model.knowledge_weight must be in \[0, 1\]"),
        ({"knowledge": "labels"}, "unknown knowledge term 'labels'"),
        (
            {"knowledge": "single_index", "reference_kernel": "none", "label_blend": 0.3},
            "use knowledge: function",
        ),
        ({"knowledge": "single_index"}, "the NTK reference needs knowledge labels"),
        (
            {"reference_kernel": "exact"},
            "unknown reference kernel 'exact'; choose one of: analytic, empirical, none",
        ),
        ({"reference_steps": -1}, "model.reference_steps must be a positive integer"),
    ],
)
def test_module_rejects_bad_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        wide_module(**kwargs)


def test_module_needs_a_known_architecture_for_the_analytic_reference():
    with pytest.raises(ConfigError, match="choose one of: relu, erf"):
        InformedWideModule(CentredNet(MLP([5, 8, 1], "tanh", "ntk")), torch.optim.SGD)
    with pytest.raises(ConfigError, match="wrap the net in"):
        InformedWideModule(MLP([5, 8, 1], "relu", "ntk"), torch.optim.SGD)
    InformedWideModule(
        CentredNet(MLP([5, 8, 1], "tanh", "ntk")), torch.optim.SGD, reference_kernel="empirical"
    )


class _Data:
    def __init__(self, splits):
        self.splits = splits

    def tensors(self, split):
        return self.splits[split]


def _toy_data():
    train = toy_problem(n=16, n_labelled=6)
    train["truth"] = truth(train["x"])
    test = toy_problem(n=10, seed=9)
    test["truth"] = truth(test["x"])
    return _Data({"train": train, "test": test})


@pytest.mark.parametrize("reference_kernel", ["analytic", "empirical"])
def test_analysis_reports_risks_and_the_reference_curve(reference_kernel):
    torch.manual_seed(0)
    module = wide_module(
        knowledge_weight=0.4, reference_kernel=reference_kernel, reference_lambdas=[0.0, 0.4, 1.0]
    ).eval()
    results = module.analysis(_toy_data())
    assert results["ntk_lambdas"] == [0.0, 0.4, 1.0]
    assert results["ntk_test_risk"] == pytest.approx(results["ntk_risk_vs_lambda"][1], rel=1e-12)
    assert results["ntk_gain"] == pytest.approx(
        results["ntk_risk_vs_lambda"][1] / min(results["ntk_risk_vs_lambda"][::2]), rel=1e-12
    )
    assert results["ntk_best_lambda"] in (0.0, 0.4, 1.0)
    assert results["knowledge_error"] > 0 and results["label_noise_variance"] > 0
    untrained = torch.mean(truth(_toy_data().splits["test"]["x"]) ** 2)  # f = 0 at init
    assert results["test_risk"] == pytest.approx(float(untrained), rel=1e-12)


# --- claim -----------------------------------------------------------------------------------


def _runs(risks_by_lambda, reference_curve=(0.3, 0.2, 0.3), seeds=3):
    runs = []
    for lam, risk in risks_by_lambda.items():
        for seed in range(seeds):
            runs.append(
                Run(
                    "lambda",
                    {"model.knowledge_weight": str(lam), "seed": str(seed)},
                    "ok",
                    {"analysis/test_risk": risk + 0.01 * seed, "analysis/ntk_test_risk": risk},
                    {
                        "analysis/ntk_lambdas": [0.0, 0.5, 1.0],
                        "analysis/ntk_risk_vs_lambda": list(reference_curve),
                    },
                    Path(f"/tmp/{lam}_{seed}"),
                )
            )
    return runs


def test_verdict_holds_on_a_u_shaped_curve():
    result = verdict(_runs({0: 0.30, 0.25: 0.20, 0.5: 0.22, 1: 0.28}))
    assert result.holds, [check.measured for check in result.checks]
    assert "best interior lambda 0.25" in result.checks[0].measured


def test_verdict_fails_on_a_monotone_curve_or_too_few_seeds():
    monotone = verdict(_runs({0: 0.30, 0.5: 0.22, 1: 0.20}, reference_curve=(0.3, 0.25, 0.2)))
    assert not monotone.checks[0].holds and not monotone.checks[1].holds
    shallow = verdict(_runs({0: 0.30, 0.5: 0.27, 1: 0.31}))
    assert not shallow.checks[0].holds  # ratio 0.9 > 0.85
    two_seeds = verdict(_runs({0: 0.30, 0.25: 0.20, 1: 0.28}, seeds=2))
    assert not two_seeds.holds
    assert not verdict(_runs({0: 0.3, 1: 0.2})).checks[0].holds  # no interior lambda
