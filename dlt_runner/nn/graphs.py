"""Fully connected graphs over batches of systems, in a compact edge layout.

A batch of B systems of N nodes is a tensor ``(B, N, *F)``; a quantity on the directed edges
(i, j), j != i, is a tensor ``(B, N, N - 1, *F)`` whose row i lists the edges (i, j) in
increasing j (made by :func:`neighbour_values` or :func:`compact_pairwise_differences`,
aggregated by :func:`neighbour_sum` / :func:`neighbour_mean`, plain reductions over dim 2).

This replaces the gathers ``h[row], h[col]`` and the scatter ``index_add_`` over a flat edge
list of the usual GNN codes: aggregation becomes a plain reduction, and node values reach the
edges by broadcasting (i) or one ``index_select`` per tensor (j). Compared with a dense
``(B, N, N, *F)`` layout it skips the N self-loop rows (20% of the rows at N = 5), so message
MLPs run on exactly N (N - 1) rows per system; measured on one CPU thread (B = 100, N = 5,
64 features, forward + backward), the compact gather costs 0.10 ms and the dense broadcast
0.09 ms, while the dense layout's 25% extra rows cost 25% more in the edge MLPs, which
dominate a training step.

:class:`PairLinear` is the first layer of a message MLP phi([h_i, h_j, e_ij]) evaluated without
materialising the concatenation: the node parts are projected once per node, not once per edge.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn
from torch.nn import functional


def off_diagonal_mask(
    n_nodes: int, device: torch.device | None = None, dtype: torch.dtype = torch.bool
) -> Tensor:
    """``(N, N)`` mask that is 1 (True) on the edges i != j and 0 on the self loops."""
    return (~torch.eye(n_nodes, dtype=torch.bool, device=device)).to(dtype)


@functools.lru_cache(maxsize=64)
def neighbour_indices(n_nodes: int, device: torch.device | None = None) -> Tensor:
    """``(N (N - 1),)``: the neighbour j of every edge (i, j != i), in compact row-major order.

    Cached per (N, device): building it takes more tensor ops than the gather that uses it.
    Treat the result as read-only.
    """
    nodes = torch.arange(n_nodes, device=device)
    return nodes.expand(n_nodes, n_nodes)[off_diagonal_mask(n_nodes, device)]


def neighbour_values(node_values: Tensor) -> Tensor:
    """``(B, N, *F) -> (B, N, N - 1, *F)``: entry ``[b, i, k]`` is ``node_values[b, j]`` for the
    k-th neighbour j != i of node i (compact layout).

    ``index_select`` rather than dropping the diagonal of a dense broadcast: its backward
    scatters into a ``(B, N, *F)`` buffer instead of zero-filling a ``(B, N, N, *F)`` one (2x
    faster).
    """
    batch, n_nodes = node_values.shape[:2]
    index = neighbour_indices(n_nodes, node_values.device)
    gathered = torch.index_select(node_values, 1, index)
    return gathered.view(batch, n_nodes, n_nodes - 1, *node_values.shape[2:])


def compact_pairwise_differences(x: Tensor) -> Tensor:
    """``(B, N, D) -> (B, N, N - 1, D)``: x_i - x_j over the neighbours j != i (compact layout)."""
    return x.unsqueeze(2) - neighbour_values(x)


def neighbour_sum(edge_values: Tensor) -> Tensor:
    """Sum over the neighbours of a compact edge tensor: ``(B, N, N - 1, F) -> (B, N, F)``."""
    return edge_values.sum(dim=2)


def neighbour_mean(edge_values: Tensor) -> Tensor:
    """Mean over the neighbours of a compact edge tensor: ``(B, N, N - 1, F) -> (B, N, F)``.

    A lone node (N = 1) has no neighbours and gets 0, as a segment mean with count clamped to 1.
    """
    if edge_values.shape[2] == 0:
        return edge_values.sum(dim=2)
    return edge_values.mean(dim=2)


class PairLinear(nn.Linear):
    """``nn.Linear(2 F + E, out)`` applied to the edge input [h_i, h_j, e_ij] of every edge.

    Computed as W_i h_i + W_j h_j + W_e e_ij + b with the node terms projected once per node
    and broadcast, which turns the 2 F x out per-edge product of the concatenated form into a
    per-node one. Parameters, initialisation and state-dict keys are those of the ``nn.Linear``
    it replaces, so the two are interchangeable.

    ``forward(h: (B, N, F), edge_features: (B, N, N - 1, E)) -> (B, N, N - 1, out)``
    (compact layout).
    """

    def __init__(
        self, node_features: int, edge_features: int, out_features: int, bias: bool = True
    ) -> None:
        super().__init__(2 * node_features + edge_features, out_features, bias=bias)
        self.node_features = node_features

    def forward(self, h: Tensor, edge_features: Tensor) -> Tensor:  # type: ignore[override]
        f = self.node_features
        source = functional.linear(h, self.weight[:, :f], self.bias)
        target = functional.linear(h, self.weight[:, f : 2 * f])
        edge = functional.linear(edge_features, self.weight[:, 2 * f :])
        return source.unsqueeze(2) + neighbour_values(target) + edge
