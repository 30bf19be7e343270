"""Networks: the generator and discriminator, the knowledge heads K(x) (reconstruction).

The paper edits a frozen pretrained StyleGAN-class generator whose knowledge is read by attribute
predictors (abstract; reconstruction). At CPU scale both players are small MLPs trained here and
the knowledge heads are closed-form, differentiable moments of the 1-D signal.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from dlt_runner.core.errors import DatasetUnavailable


def _mlp(sizes: list[int], slope: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope))
    return layers


class Generator(nn.Module):
    """G(z) (or G(z, y) with ``label_dim`` > 0): MLP, LeakyReLU hidden layers, Sigmoid output."""

    def __init__(
        self,
        latent_dim: int = 6,
        hidden: tuple[int, ...] = (128, 128),
        output_dim: int = 32,
        label_dim: int = 0,
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.latent_dim, self.label_dim = int(latent_dim), int(label_dim)
        sizes = [self.latent_dim + self.label_dim, *hidden, int(output_dim)]
        self.layers = nn.Sequential(*_mlp(sizes, slope), nn.Sigmoid())

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_dim:
            z = torch.cat([z, labels], dim=1)
        return self.layers(z)


class Discriminator(nn.Module):
    """D(x) (or D(x, y) with ``label_dim`` > 0): MLP logits, LeakyReLU hidden layers."""

    def __init__(
        self,
        input_dim: int = 32,
        hidden: tuple[int, ...] = (128, 128),
        label_dim: int = 0,
        slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.label_dim = int(label_dim)
        self.layers = nn.Sequential(*_mlp([int(input_dim) + self.label_dim, *hidden, 1], slope))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_dim:
            x = torch.cat([x, labels], dim=1)
        return self.layers(x).squeeze(1)


class GANPlayers(nn.ModuleDict):
    """The two players, keyed by the names of their optimisers."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module | None = None) -> None:
        players = {"generator": generator}
        if discriminator is not None:
            players["discriminator"] = discriminator
        super().__init__(players)


class BumpKnowledge(nn.Module):
    """K(x) = (position, width, height) of 1-D signals on t in [0, 1], weighted by q = x^2.

    position = sum(q t) / sum(q); width = sqrt(2 sum(q (t - position)^2) / sum(q));
    height = sqrt(sqrt(2) sum(q^2) / sum(q)). For a bump h exp(-(t - c)^2 / (2 w^2)) away from
    the ends of the grid these return (c, w, h): q is a Gaussian of variance w^2 / 2 and
    sum(q^2) / sum(q) = h^2 / sqrt(2). Weighting by x^2 (not x) keeps a small background floor
    from reading as width. Index 1 (width) is the knowledge to extrapolate (reconstruction).
    """

    names = ("position", "width", "height")
    target_index = 1

    def __init__(self, n_points: int = 32) -> None:
        super().__init__()
        self.register_buffer("grid", torch.linspace(0.0, 1.0, int(n_points)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        grid = self.grid.to(x)
        q = x**2
        mass = q.sum(1)
        position = (q * grid).sum(1) / mass
        spread = (q * (grid - position[:, None]) ** 2).sum(1) / mass
        width = torch.sqrt(2 * spread)
        height = torch.sqrt(math.sqrt(2.0) * (q**2).sum(1) / mass)
        return torch.stack([position, width, height], dim=1)


def _scripted(path: str | Path, what: str, key: str) -> torch.jit.ScriptModule:
    path = Path(path)
    if not path.is_file():
        raise DatasetUnavailable(
            f"{what} not found at {path} ({key}): pretrained weights cannot be downloaded "
            "offline; export the network with torch.jit.save and put it under paths.data_dir, "
            f"or point {key}=/path/to/file.pt at it"
        )
    return torch.jit.load(str(path), map_location="cpu")


class PretrainedGenerator(nn.Module):
    """A frozen pretrained generator w -> image saved as TorchScript (paper scale, e.g. StyleGAN2
    in W space). Its output is flattened to (N, features) for the knowledge heads. The file is
    read by :meth:`load` (at fit start), so configs compose without it."""

    def __init__(self, checkpoint: str, latent_dim: int = 512) -> None:
        super().__init__()
        self.checkpoint = str(checkpoint)
        self.latent_dim, self.label_dim = int(latent_dim), 0
        self.network: nn.Module | None = None

    def load(self) -> None:
        if self.network is None:
            self.network = _scripted(
                self.checkpoint, "generator checkpoint", "model.net.generator.checkpoint"
            )
            for parameter in self.network.parameters():
                parameter.requires_grad_(False)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        self.load()
        return self.network(z).flatten(1)


class PretrainedKnowledge(nn.Module):
    """Knowledge heads from a pretrained attribute predictor image -> attribute scores, saved as
    TorchScript (paper scale: age, glasses, smile, pose, ... classifiers); ``target_index`` picks
    the attribute to extrapolate, the others are the remaining knowledge. Read by :meth:`load`."""

    def __init__(self, checkpoint: str, target_index: int = 0, image_shape: tuple = ()) -> None:
        super().__init__()
        self.checkpoint = str(checkpoint)
        self.target_index = int(target_index)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.network: nn.Module | None = None

    def load(self) -> None:
        if self.network is None:
            self.network = _scripted(
                self.checkpoint, "attribute predictor", "model.heads.checkpoint"
            )
            for parameter in self.network.parameters():
                parameter.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        self.load()
        if self.image_shape:
            x = x.reshape(len(x), *self.image_shape)
        return self.network(x)
