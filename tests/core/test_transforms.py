"""On-device transforms: shapes, statistics, content, and determinism per (seed, step)."""

from __future__ import annotations

import pytest
import torch

from dlt_runner.core.errors import ConfigError
from dlt_runner.core.module import RunnerModule
from dlt_runner.data.transforms import (
    TRANSFORMS,
    PatchDrop,
    PatchWindow,
    RandomCropFlip,
    TwoViews,
    make_transform,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int = 64) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=_generator(1)) + 0.5  # no zero pixels


def test_patch_drop_zeroes_whole_patches_at_the_requested_rate():
    x = torch.rand(400, 50, 6, generator=_generator(1)) + 0.5
    out = PatchDrop(keep=0.3)(x, _generator())
    assert out.shape == x.shape
    kept = (out != 0).all(-1)
    assert torch.equal(kept, (out != 0).any(-1)), "a patch is dropped whole or kept whole"
    assert torch.equal(out[kept], x[kept]), "kept patches are unchanged"
    # 20,000 Bernoulli(0.3) draws: standard error 0.0032, so 0.015 is ~5 standard errors.
    assert float(kept.double().mean()) == pytest.approx(0.3, abs=0.015)
    assert torch.equal(PatchDrop(keep=1.0)(x, _generator()), x)


def test_patch_window_keeps_one_contiguous_cyclic_window_of_patches():
    x = torch.rand(300, 8, 5, generator=_generator(1)) + 0.5
    out = PatchWindow(keep=0.4)(x, _generator())  # round(3.2) = 3 patches
    kept = (out != 0).all(-1)
    assert torch.equal(kept, (out != 0).any(-1)), "a patch is dropped whole or kept whole"
    assert torch.equal(out[kept], x[kept]), "kept patches are unchanged"
    assert torch.equal(kept.sum(1), torch.full((300,), 3))
    starts = set()
    for row in kept:
        # one run of 3 consecutive positions modulo 8: exactly one start p with p kept, p-1 not
        begins = [p for p in range(8) if row[p] and not row[p - 1]]
        assert len(begins) == 1 and all(row[(begins[0] + i) % 8] for i in range(3))
        starts.add(begins[0])
    assert starts == set(range(8)), "the window starts anywhere, wrapping around"
    assert torch.equal(PatchWindow(keep=1.0)(x, _generator()), x)


def test_crop_without_flip_is_the_image_shifted_within_the_padding():
    x = _images()
    out = RandomCropFlip(padding=2, flip=False)(x, _generator())
    assert out.shape == x.shape
    shifts = set()
    for image, crop in zip(x, out, strict=True):
        # the crop's non-zero block is the image shifted by (dy, dx), |dy|, |dx| <= padding
        rows = crop.abs().sum((0, 2)).nonzero().flatten()
        cols = crop.abs().sum((0, 1)).nonzero().flatten()
        dy = int(rows[0]) if rows[0] > 0 else -(8 - 1 - int(rows[-1]))
        dx = int(cols[0]) if cols[0] > 0 else -(8 - 1 - int(cols[-1]))
        assert abs(dy) <= 2 and abs(dx) <= 2
        shifted = torch.zeros_like(image)
        shifted[:, max(dy, 0) : 8 + min(dy, 0), max(dx, 0) : 8 + min(dx, 0)] = image[
            :, max(-dy, 0) : 8 - max(dy, 0), max(-dx, 0) : 8 - max(dx, 0)
        ]
        assert torch.equal(crop, shifted)
        shifts.add((dy, dx))
    assert len(shifts) > 10, "offsets are drawn per sample"


def test_flip_without_padding_mirrors_about_half_of_the_images():
    x = _images(400)
    out = RandomCropFlip(padding=0, flip=True)(x, _generator())
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())
    assert float(mirrored.double().mean()) == pytest.approx(0.5, abs=0.1)


def test_two_views_are_independent_draws():
    x = _images()
    first, second = TwoViews(RandomCropFlip())(x, _generator())
    assert first.shape == second.shape == x.shape
    assert not torch.equal(first, second)
    named = TwoViews("patch_drop", keep=0.5)(torch.ones(8, 4, 2), _generator())
    assert not torch.equal(*named)


@pytest.mark.parametrize(
    ("name", "options", "shape"),
    [("patch_drop", {"keep": 0.5}, (16, 9, 4)), ("crop_flip", {}, (16, 3, 8, 8))],
)
def test_same_seed_and_step_same_output_different_step_different_output(
    name, options, shape, monkeypatch
):
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    transform = make_transform(name, **options)
    x = torch.rand(*shape, generator=_generator(1)) + 0.5
    module = RunnerModule(torch.nn.Linear(1, 1), torch.optim.SGD)
    at_step = {}
    for step in (3, 3, 4):
        module._position = (0, 0)
        monkeypatch.setattr(RunnerModule, "global_step", property(lambda self, s=step: s))
        at_step.setdefault(step, []).append(transform(x, module.step_generator()))
    assert torch.equal(*at_step[3])
    assert not torch.equal(at_step[3][0], at_step[4][0])
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")
    assert not torch.equal(transform(x, module.step_generator()), at_step[4][0])


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="choose one of: " + ", ".join(TRANSFORMS)):
        make_transform("cutout")


@pytest.mark.parametrize("bad", [0, -0.1, 1.5])
def test_patch_drop_refuses_a_keep_outside_0_1(bad):
    with pytest.raises(ConfigError, match="keep"):
        PatchDrop(bad)
