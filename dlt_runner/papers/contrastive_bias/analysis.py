"""The paper's two measurements of a representation: held-out contrastive loss and linear-probe
accuracy (paper §2: L_cont and L_clf; Table 1's two columns)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from dlt_runner.papers.contrastive_bias.losses import nt_xent

Encoder = Callable[[Tensor], Tensor]
Views = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]


def heldout_contrastive_loss(
    encoder: Encoder,
    x: Tensor,
    views: Views,
    batch_size: int,
    seed: int,
    temperature: float = 0.5,
) -> float:
    """Mean NT-Xent loss over held-out inputs, in batches of ``batch_size`` (the training batch:
    the loss's value depends on the number of negatives).

    The views are drawn from one generator seeded with ``seed``, batch after batch, so every
    encoder evaluated with the same ``seed`` on the same ``x`` sees identical augmentations.
    The last incomplete batch is dropped (all of ``x`` is one batch when smaller than
    ``batch_size``).
    """
    n = len(x)
    size = min(int(batch_size), n)
    generator = torch.Generator(device=x.device).manual_seed(int(seed))
    losses = []
    with torch.no_grad():
        for start in range(0, n - size + 1, size):
            first, second = views(x[start : start + size], generator)
            losses.append(float(nt_xent(encoder(first), encoder(second), temperature)))
    return float(np.mean(losses))


def representations(encoder: Encoder, x: Tensor, batch_size: int = 4096) -> np.ndarray:
    """encoder(x) in batches, as a float64 numpy array on the CPU."""
    with torch.no_grad():
        parts = [encoder(x[start : start + batch_size]) for start in range(0, len(x), batch_size)]
    return torch.cat(parts).double().cpu().numpy()


def linear_probe_accuracy(
    fit_features: np.ndarray,
    fit_labels: np.ndarray,
    score_features: np.ndarray,
    score_labels: np.ndarray,
    max_iter: int = 3000,
) -> float:
    """Accuracy on the score set of a multinomial logistic regression fitted on standardised
    features of the fit set (the downstream linear classifier of paper §2; L2, C = 1).

    Features that are constant on the fit set are kept at zero after standardisation.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    fit_labels, score_labels = np.asarray(fit_labels), np.asarray(score_labels)
    if len(np.unique(fit_labels)) < 2:
        return float(np.mean(score_labels == fit_labels[0]))
    scaler = StandardScaler().fit(fit_features)
    probe = LogisticRegression(max_iter=int(max_iter))
    probe.fit(scaler.transform(fit_features), fit_labels)
    return float(probe.score(scaler.transform(score_features), score_labels))
