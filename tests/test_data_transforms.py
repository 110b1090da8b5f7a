"""Clip transforms: shapes, same randomness on every frame, crop boxes, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hi2m.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VOXCELEB2_CROP_BOX,
    Compose,
    FixedCrop,
    MultiScaleCrop,
    Normalize,
    PretrainViews,
    RandAugment,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToClipTensor,
    ToFloat,
    finetune_transform,
    pretrain_transform,
)


def random_clip(t: int = 4, h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def repeated_clip(t: int = 4, h: int = 48, w: int = 40) -> np.ndarray:
    """Every frame identical, so any per-frame difference after a transform is a bug."""
    return np.repeat(random_clip(1, h, w), t, axis=0)


def test_to_tensor_layout_and_values():
    clip = random_clip()
    out = Compose([ToClipTensor(), ToFloat()])(clip)
    assert out.shape == (3, 4, 48, 40) and out.dtype == torch.float32
    assert torch.allclose(out[1, 2], torch.from_numpy(clip[2, :, :, 1]).float() / 255)
    with pytest.raises(ValueError, match="T, H, W, 3"):
        ToClipTensor()(clip[..., :2])


def test_fixed_crop_takes_the_voxceleb2_box():
    clip = random_clip(2, 224, 224)
    out = Compose([ToClipTensor(), FixedCrop(VOXCELEB2_CROP_BOX)])(clip)
    assert out.shape == (3, 2, 160, 160)
    assert torch.equal(out.permute(1, 2, 3, 0), torch.from_numpy(clip[:, 0:160, 32:192]))


def test_crop_box_that_does_not_fit_names_the_sizes():
    clip = random_clip(2, 97, 161)
    with pytest.raises(ValueError, match="97x161"):
        Compose([ToClipTensor(), FixedCrop(VOXCELEB2_CROP_BOX)])(clip)


def test_normalize_uses_imagenet_statistics():
    clip = torch.ones(3, 2, 4, 4) * 0.5
    out = Normalize()(clip)
    expected = (0.5 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, 0, 0, 0], expected)


@pytest.mark.parametrize(
    "transform",
    [
        RandomResizedCrop(32, scale=(0.2, 0.6)),
        MultiScaleCrop(32),
        RandomHorizontalFlip(1.0),
        RandAugment(3, 9),
        RandomErasing(1.0),
        finetune_transform(32, train=True),
        pretrain_transform(32),
    ],
    ids=lambda t: type(t).__name__,
)
def test_random_transforms_apply_the_same_change_to_every_frame(transform):
    first_steps = [] if isinstance(transform, (Compose, PretrainViews)) else [ToClipTensor(), ToFloat()]
    pipeline = Compose(first_steps + [transform])
    for seed in range(5):
        out = pipeline(repeated_clip(), torch.Generator().manual_seed(seed))  # (C, T, h, w)
        for t in range(1, out.shape[1]):
            assert torch.allclose(out[:, t], out[:, 0], atol=1e-6)


def test_random_transforms_are_deterministic_with_a_generator_and_vary_without():
    pipeline = finetune_transform(32, train=True)
    clip = random_clip()
    a = pipeline(clip, torch.Generator().manual_seed(1))
    b = pipeline(clip, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    others = [pipeline(clip, torch.Generator().manual_seed(s)) for s in range(2, 6)]
    assert any(not torch.equal(a, o) for o in others)


def test_horizontal_flip_mirrors_columns():
    clip = ToFloat()(ToClipTensor()(random_clip()))
    assert torch.equal(RandomHorizontalFlip(1.0)(clip), clip.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(clip), clip)


def test_resize_and_multiscale_output_sizes():
    clip = ToFloat()(ToClipTensor()(random_clip(3, 60, 90)))
    assert Resize((20, 30))(clip).shape == (3, 3, 20, 30)
    gen = torch.Generator().manual_seed(0)
    crop = MultiScaleCrop(24)
    boxes = {crop.box(60, 90, gen) for _ in range(50)}
    assert len(boxes) > 5
    for top, left, h, w in boxes:
        assert top + h <= 60 and left + w <= 90
        assert min(h, w) >= int(60 * 0.66)
    assert crop(clip, gen).shape == (3, 3, 24, 24)


def test_resize_of_uint8_clip_asks_for_float():
    with pytest.raises(TypeError, match="ToFloat"):
        Resize(16)(ToClipTensor()(random_clip()))


def test_ready_pipelines_shapes():
    clip = random_clip(4, 224, 224)
    pre = pretrain_transform(160, crop_box=VOXCELEB2_CROP_BOX)(clip, torch.Generator().manual_seed(0))
    assert pre.shape == (3, 4, 160, 160) and pre.dtype == torch.float32
    ev = finetune_transform(112, train=False)(clip)
    assert ev.shape == (3, 4, 112, 112)
    assert any(isinstance(t, RandomHorizontalFlip) for t in finetune_transform(160, train=True).transforms)
    assert not any(isinstance(t, RandomHorizontalFlip) for t in finetune_transform(160, train=False).transforms)


def test_a_read_only_clip_is_copied_not_aliased():
    """torch warns (once per process) about a tensor over a read-only array, and writing through it would be
    undefined: a read-only clip (a prerendered pool shared between runs) is copied; a writable one is not."""
    clip = random_clip()
    shared = ToClipTensor()(clip)
    assert shared.untyped_storage().data_ptr() == clip.ctypes.data  # no copy of a decoder's own frames
    clip.setflags(write=False)
    copied = ToClipTensor()(clip)
    assert copied.untyped_storage().data_ptr() != clip.ctypes.data and torch.equal(copied, shared)
