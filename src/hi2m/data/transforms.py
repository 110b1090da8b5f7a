"""Clip transforms in plain torch (no torchvision).

Every transform is a callable ``t(clip, generator=None) -> clip`` working on a whole
clip tensor ``(C, T, H, W)`` at once, so a random transform draws its parameters
once and applies the same crop/flip/colour change to every frame. ``generator`` is
an optional ``torch.Generator`` (None = torch's global RNG).

The pipeline starts with :class:`ToClipTensor` (uint8 ``(T, H, W, 3)`` array ->
uint8 ``(C, T, H, W)`` tensor, a view) and :class:`ToFloat` (-> float in [0, 1]);
geometric transforms work on either dtype except the ones that resample, which need
float. Ready pipelines: :func:`pretrain_transform`, :func:`finetune_transform` (training) and
:class:`EvalViews` -- the one evaluation transform (shorter side to ``size``, centre or spread crops,
normalisation) that evaluation, ``hi2m predict``, ``hi2m visualize``, the SynthFace study and the export
metadata all use.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor

from hi2m.model.config import IMAGENET_MEAN, IMAGENET_STD  # the one definition (the model's defaults)

# (top, left, bottom, right) of the VoxCeleb2 pretraining crop in a 224x224 frame:
# rows 0-160, columns 32-192 (the upper centre, where the face is).
VOXCELEB2_CROP_BOX: tuple[int, int, int, int] = (0, 32, 160, 192)

# VideoMAE-style multi-scale crop sizes, as fractions of the shorter side.
MULTISCALE_SCALES: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)


def _size2(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high)."""
    return int(torch.randint(0, high, (1,), generator=generator))


def _resize(clip: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a float clip (C, T, H, W) to (C, T, *size)."""
    if tuple(clip.shape[-2:]) == size:
        return clip
    if not clip.is_floating_point():
        raise TypeError("resizing needs a float clip: put ToFloat() before it")
    frames = clip.transpose(0, 1)  # (T, C, H, W)
    antialias = size[0] < clip.shape[-2] or size[1] < clip.shape[-1]
    out = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=antialias)
    return out.transpose(0, 1)  # (C, T, h, w)


class Compose:
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Callable[..., Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, clip: Tensor | np.ndarray, generator: torch.Generator | None = None) -> Tensor:
        for t in self.transforms:
            clip = t(clip, generator)
        return clip

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class ToClipTensor:
    """uint8 array or tensor (T, H, W, 3) -> uint8 tensor (C, T, H, W) (no copy)."""

    def __call__(self, clip: Tensor | np.ndarray, generator: torch.Generator | None = None) -> Tensor:
        if isinstance(clip, np.ndarray):
            # a read-only array (a shared, prerendered pool) is copied: torch tensors must be writable
            clip = np.ascontiguousarray(clip) if clip.flags.writeable else np.array(clip, order="C")
        tensor = torch.from_numpy(clip) if isinstance(clip, np.ndarray) else clip
        if tensor.ndim != 4 or tensor.shape[-1] != 3:
            raise ValueError(f"expected a clip (T, H, W, 3), got shape {tuple(tensor.shape)}")
        return tensor.permute(3, 0, 1, 2)  # (C, T, H, W)

    def __repr__(self) -> str:
        return "ToClipTensor()"


class ToFloat:
    """uint8 (C, T, H, W) -> contiguous float32 in [0, 1]."""

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return clip.contiguous().to(torch.float32).div_(255.0)  # (C, T, H, W)

    def __repr__(self) -> str:
        return "ToFloat()"


class FixedCrop:
    """Crop the same box from every frame; ``box`` is (top, left, bottom, right)."""

    def __init__(self, box: Sequence[int]) -> None:
        top, left, bottom, right = (int(v) for v in box)
        if not (0 <= top < bottom and 0 <= left < right):
            raise ValueError(f"crop box must be (top, left, bottom, right) with top<bottom, left<right, got {box}")
        self.box = (top, left, bottom, right)

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        top, left, bottom, right = self.box
        height, width = clip.shape[-2:]
        if bottom > height or right > width:
            raise ValueError(f"crop box {self.box} does not fit a {height}x{width} (HxW) frame")
        return clip[..., top:bottom, left:right]  # (C, T, bottom-top, right-left)

    def __repr__(self) -> str:
        return f"FixedCrop(box={self.box})"


class Resize:
    """Resize every frame to ``size`` (int = square, or (height, width)), bilinear."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size2(size)

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return _resize(clip, self.size)  # (C, T, h, w)

    def __repr__(self) -> str:
        return f"Resize(size={self.size})"


class RandomResizedCrop:
    """Crop a random area/aspect-ratio box (same for all frames) and resize it to ``size``."""

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.25, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        self.size = _size2(size)
        self.scale = scale
        self.ratio = ratio

    def box(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int, int, int]:
        """(top, left, h, w) of a random crop of a height x width frame."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * _uniform(self.scale[0], self.scale[1], generator)
            aspect = math.exp(_uniform(log_lo, log_hi, generator))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return _randint(height - h + 1, generator), _randint(width - w + 1, generator), h, w
        side = min(height, width)  # fallback: centred square
        return (height - side) // 2, (width - side) // 2, side, side

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        top, left, h, w = self.box(clip.shape[-2], clip.shape[-1], generator)
        return _resize(clip[..., top : top + h, left : left + w], self.size)  # (C, T, *size)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio})"


class MultiScaleCrop:
    """VideoMAE-style multi-scale crop, then resize to ``size``.

    Crop height and width are picked independently from ``scales`` x (shorter
    side), at most ``max_distort`` scale steps apart, and the crop is placed at one of
    13 fixed positions (corners, centre, edge middles and quarter points).
    """

    def __init__(
        self, size: int | Sequence[int], scales: Sequence[float] = MULTISCALE_SCALES, max_distort: int = 1
    ) -> None:
        self.size = _size2(size)
        self.scales = tuple(scales)
        self.max_distort = max_distort

    def box(self, height: int, width: int, generator: torch.Generator | None) -> tuple[int, int, int, int]:
        base = min(height, width)
        sides = [max(1, int(base * s)) for s in self.scales]
        pairs = [
            (sides[i], sides[j])
            for i in range(len(sides))
            for j in range(len(sides))
            if abs(i - j) <= self.max_distort
        ]
        h, w = pairs[_randint(len(pairs), generator)]
        step_y, step_x = (height - h) / 4, (width - w) / 4
        grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (0, 2), (4, 2), (2, 0), (2, 4), (1, 1), (1, 3), (3, 1), (3, 3)]
        gy, gx = grid[_randint(len(grid), generator)]
        return int(round(gy * step_y)), int(round(gx * step_x)), h, w

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        top, left, h, w = self.box(clip.shape[-2], clip.shape[-1], generator)
        return _resize(clip[..., top : top + h, left : left + w], self.size)  # (C, T, *size)

    def __repr__(self) -> str:
        return f"MultiScaleCrop(size={self.size}, scales={self.scales})"


class RandomHorizontalFlip:
    """Mirror every frame of the clip with probability ``p`` (fine-tuning only)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if float(torch.rand((), generator=generator)) < self.p:
            return clip.flip(-1)  # (C, T, H, W)
        return clip

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Per-channel ``(x - mean) / std`` on a float clip (C, T, H, W)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)  # (C, 1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)  # (C, 1, 1, 1)

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not clip.is_floating_point():
            raise TypeError("Normalize needs a float clip: put ToFloat() before it")
        return (clip - self.mean) / self.std  # (C, T, H, W)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class RandomErasing:
    """With probability ``p``, replace one random box (same on all frames) by noise.

    Applied after normalisation, so the N(0, 1) noise matches the data statistics.
    """

    def __init__(
        self,
        p: float = 0.25,
        scale: tuple[float, float] = (0.02, 1 / 3),
        ratio: tuple[float, float] = (0.3, 3.3),
    ) -> None:
        self.p, self.scale, self.ratio = p, scale, ratio

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if float(torch.rand((), generator=generator)) >= self.p:
            return clip
        channels, frames, height, width = clip.shape
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            area = height * width * _uniform(self.scale[0], self.scale[1], generator)
            aspect = math.exp(_uniform(log_lo, log_hi, generator))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if 0 < h < height and 0 < w < width:
                top, left = _randint(height - h + 1, generator), _randint(width - w + 1, generator)
                noise = torch.randn((channels, 1, h, w), generator=generator, dtype=clip.dtype)  # (C, 1, h, w)
                out = clip.clone()
                out[..., top : top + h, left : left + w] = noise  # same noise on every frame
                return out
        return clip

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio})"


# --------------------------------------------------------------------------------------
# RandAugment-style jitter (float clips in [0, 1], before normalisation)
# --------------------------------------------------------------------------------------


def _gray(clip: Tensor) -> Tensor:
    """Luma (1, T, H, W) of an RGB float clip (C, T, H, W)."""
    r, g, b = clip[0], clip[1], clip[2]
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(0)


def _blend(clip: Tensor, other: Tensor, factor: float) -> Tensor:
    """other + factor * (clip - other), clamped to [0, 1]: factor 1 = unchanged."""
    return (other + factor * (clip - other)).clamp_(0.0, 1.0)


def _affine(clip: Tensor, matrix: list[list[float]]) -> Tensor:
    """Apply a 2x3 affine map (normalised coordinates, output -> input) to every frame."""
    frames = clip.transpose(0, 1)  # (T, C, H, W)
    theta = torch.tensor(matrix, dtype=clip.dtype).unsqueeze(0).expand(frames.shape[0], 2, 3)  # (T, 2, 3)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)  # (T, H, W, 2)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.transpose(0, 1)  # (C, T, H, W)


def _op_brightness(clip: Tensor, level: float) -> Tensor:
    return _blend(clip, torch.zeros_like(clip), 1.0 + 0.9 * level)


def _op_contrast(clip: Tensor, level: float) -> Tensor:
    return _blend(clip, _gray(clip).mean().expand_as(clip), 1.0 + 0.9 * level)


def _op_saturation(clip: Tensor, level: float) -> Tensor:
    return _blend(clip, _gray(clip).expand_as(clip), 1.0 + 0.9 * level)


def _op_solarize(clip: Tensor, level: float) -> Tensor:
    threshold = 1.0 - abs(level)
    return torch.where(clip >= threshold, 1.0 - clip, clip)


def _op_posterize(clip: Tensor, level: float) -> Tensor:
    bits = 8 - int(round(abs(level) * 4))  # 8 .. 4 bits
    levels = 2**bits
    return torch.floor(clip * (levels - 1) + 0.5) / (levels - 1)


def _op_autocontrast(clip: Tensor, level: float) -> Tensor:
    low = clip.amin(dim=(1, 2, 3), keepdim=True)  # (C, 1, 1, 1)
    high = clip.amax(dim=(1, 2, 3), keepdim=True)  # (C, 1, 1, 1)
    return ((clip - low) / (high - low).clamp_min(1e-3)).clamp_(0.0, 1.0)


def _op_rotate(clip: Tensor, level: float) -> Tensor:
    angle = math.radians(30.0 * level)
    c, s = math.cos(angle), math.sin(angle)
    return _affine(clip, [[c, -s, 0.0], [s, c, 0.0]])


def _op_shear_x(clip: Tensor, level: float) -> Tensor:
    return _affine(clip, [[1.0, 0.3 * level, 0.0], [0.0, 1.0, 0.0]])


def _op_shear_y(clip: Tensor, level: float) -> Tensor:
    return _affine(clip, [[1.0, 0.0, 0.0], [0.3 * level, 1.0, 0.0]])


def _op_translate_x(clip: Tensor, level: float) -> Tensor:
    return _affine(clip, [[1.0, 0.0, 0.45 * 2 * level], [0.0, 1.0, 0.0]])


def _op_translate_y(clip: Tensor, level: float) -> Tensor:
    return _affine(clip, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.45 * 2 * level]])


def _op_identity(clip: Tensor, level: float) -> Tensor:
    return clip


RAND_AUGMENT_OPS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "identity": _op_identity,
    "autocontrast": _op_autocontrast,
    "brightness": _op_brightness,
    "contrast": _op_contrast,
    "saturation": _op_saturation,
    "solarize": _op_solarize,
    "posterize": _op_posterize,
    "rotate": _op_rotate,
    "shear_x": _op_shear_x,
    "shear_y": _op_shear_y,
    "translate_x": _op_translate_x,
    "translate_y": _op_translate_y,
}


class RandAugment:
    """Apply ``num_ops`` random colour/geometry ops at ``magnitude`` (0-10) to the clip.

    Each op gets a random sign; the same op and parameters apply to every frame.
    Works on float clips in [0, 1] (put it before :class:`Normalize`).
    """

    def __init__(self, num_ops: int = 2, magnitude: float = 7.0, ops: Sequence[str] | None = None) -> None:
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.ops = tuple(ops) if ops is not None else tuple(RAND_AUGMENT_OPS)
        unknown = [o for o in self.ops if o not in RAND_AUGMENT_OPS]
        if unknown:
            raise ValueError(f"unknown RandAugment ops {unknown}; known: {sorted(RAND_AUGMENT_OPS)}")

    def __call__(self, clip: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not clip.is_floating_point():
            raise TypeError("RandAugment needs a float clip in [0, 1]: put ToFloat() before it")
        for _ in range(self.num_ops):
            name = self.ops[_randint(len(self.ops), generator)]
            sign = 1.0 if float(torch.rand((), generator=generator)) < 0.5 else -1.0
            clip = RAND_AUGMENT_OPS[name](clip, sign * self.magnitude / 10.0)
        return clip

    def __repr__(self) -> str:
        return f"RandAugment(num_ops={self.num_ops}, magnitude={self.magnitude})"


# --------------------------------------------------------------------------------------
# Ready pipelines
# --------------------------------------------------------------------------------------


def default_transform() -> Compose:
    """uint8 (T, H, W, 3) -> float (C, T, H, W) in [0, 1], nothing else."""
    return Compose([ToClipTensor(), ToFloat()])


def pretrain_transform(
    size: int = 160,
    crop_box: Sequence[int] | None = None,
    scales: Sequence[float] = MULTISCALE_SCALES,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    on_device: bool = False,
) -> "PretrainViews":
    """Pretraining: optional fixed crop (e.g. :data:`VOXCELEB2_CROP_BOX`), multi-scale crop to
    ``size``, normalisation. No flip (the model learns facial dynamics as they are).

    ``on_device=False``: the whole augmentation in the DataLoader worker (float32 items).
    ``on_device=True``: the worker returns uint8 frames and each view's crop box; the training step
    applies :meth:`PretrainViews.apply` to the batch on its device (see :class:`PretrainViews`)."""
    return PretrainViews(size, crop_box, scales, mean, std, on_device=on_device)


def view_fields(views: list, stacked: bool) -> dict[str, Tensor]:
    """An item's ``video`` from its transformed views: the one view ``(C, T, H, W)`` or, ``stacked``, all of
    them ``(R, C, T, H, W)``. Views that :class:`PretrainViews` left for the training device are ``(uint8
    frames, box)`` pairs: ``video`` is then uint8 and ``box`` holds the crop boxes, ``(4,)`` or ``(R, 4)``."""
    def stack(parts: list[Tensor]) -> Tensor:
        return torch.stack(parts) if stacked else parts[0].contiguous()

    if isinstance(views[0], tuple):
        frames, boxes = zip(*views)
        return {"video": stack(list(frames)), "box": stack(list(boxes))}
    return {"video": stack(views)}


class PretrainViews:
    """The pretraining augmentation in two halves, so the second can run batched on the training device.

    - :meth:`draw` (the DataLoader worker, per view): the fixed crop box (a uint8 view, no copy) and a random
      multi-scale crop box ``(top, left, height, width)`` drawn exactly as :class:`MultiScaleCrop` draws it;
      nothing is resampled. Returns ``(uint8 (C, T, Hb, Wb), int64 box (4,))``.
    - :meth:`apply` (any device, a batch): crop each view to its box, resize to ``size`` (bilinear, antialiased
      when shrinking, as :class:`Resize`), scale to [0, 1] and normalise. Views are grouped by box size, so a
      batch costs one interpolation per distinct box size (at most ``len(scales)**2``).

    ``__call__`` is the worker-side pipeline: with ``on_device=False`` it is ``apply(draw(clip))`` (float32
    ``(C, T, size, size)``), with ``on_device=True`` it is ``draw`` alone. Both consume the item's generator
    identically, so switching where the augmentation runs keeps every random stream (and exact resume).
    """

    def __init__(self, size: int | Sequence[int] = 160, crop_box: Sequence[int] | None = None,
                 scales: Sequence[float] = MULTISCALE_SCALES, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, on_device: bool = False) -> None:
        self.size = _size2(size)
        self.fixed = FixedCrop(crop_box) if crop_box is not None else None
        self.crop = MultiScaleCrop(size, scales)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.on_device = on_device

    def draw(self, clip: Tensor | np.ndarray, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """uint8 (T, H, W, 3) -> (uint8 (C, T, Hb, Wb), int64 (4,) = top, left, height, width)."""
        x = ToClipTensor()(clip)  # (C, T, H, W) uint8 view
        if self.fixed is not None:
            x = self.fixed(x)  # (C, T, Hb, Wb)
        box = self.crop.box(x.shape[-2], x.shape[-1], generator)
        return x, torch.tensor(box, dtype=torch.int64)  # (C, T, Hb, Wb), (4,)

    def apply(self, videos: Tensor, boxes: Tensor) -> Tensor:
        """uint8 (N, C, T, Hb, Wb) and int (N, 4) boxes -> float32 (N, C, T, *size), on ``videos``' device."""
        n, c, t, height, width = videos.shape
        boxes = boxes.reshape(n, 4).tolist()
        for top, left, h, w in boxes:
            if not (0 <= top and 0 < h and top + h <= height and 0 <= left and 0 < w and left + w <= width):
                raise ValueError(f"crop box {(top, left, h, w)} does not fit {height}x{width} frames")
        out = torch.empty((n, c, t, *self.size), dtype=torch.float32, device=videos.device)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (_, _, h, w) in enumerate(boxes):
            groups.setdefault((h, w), []).append(i)
        for (h, w), rows in groups.items():
            crops = torch.stack([videos[i, :, :, boxes[i][0]:boxes[i][0] + h, boxes[i][1]:boxes[i][1] + w]
                                 for i in rows])  # (g, C, T, h, w) uint8
            frames = crops.transpose(1, 2).reshape(len(rows) * t, c, h, w).float().div_(255.0)  # (g*T, C, h, w)
            if (h, w) != self.size:
                shrink = self.size[0] < h or self.size[1] < w
                frames = F.interpolate(frames, size=self.size, mode="bilinear", align_corners=False,
                                       antialias=shrink)  # (g*T, C, *size)
            index = torch.tensor(rows, device=videos.device)
            out.index_copy_(0, index, frames.reshape(len(rows), t, c, *self.size).transpose(1, 2))
        mean = torch.tensor(self.mean, device=videos.device).view(1, -1, 1, 1, 1)  # (1, C, 1, 1, 1)
        std = torch.tensor(self.std, device=videos.device).view(1, -1, 1, 1, 1)  # (1, C, 1, 1, 1)
        return out.sub_(mean).div_(std)  # (N, C, T, *size)

    def __call__(self, clip: Tensor | np.ndarray, generator: torch.Generator | None = None):
        video, box = self.draw(clip, generator)
        if self.on_device:
            return video, box
        return self.apply(video.unsqueeze(0), box.unsqueeze(0))[0]  # (C, T, *size)

    def __repr__(self) -> str:
        where = "device" if self.on_device else "worker"
        return f"PretrainViews(size={self.size}, crop={self.fixed}, {self.crop}, on {where})"


def finetune_transform(
    size: int = 160,
    train: bool = True,
    scale: tuple[float, float] | None = (0.25, 1.0),
    rand_augment: tuple[int, float] | None = (2, 7.0),
    erase_p: float = 0.25,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """Fine-tuning. Train: random resized crop (area share in ``scale``; None: resize the whole frame),
    horizontal flip, RandAugment (``(num_ops, magnitude)`` or None), normalisation, random erasing.
    Eval: resize the whole frame to ``size`` and normalise."""
    if not train:
        return Compose([ToClipTensor(), ToFloat(), Resize(size), Normalize(mean, std)])
    steps: list[Callable[..., Tensor]] = [
        ToClipTensor(),
        ToFloat(),
        RandomResizedCrop(size, scale=scale) if scale is not None else Resize(size),
        RandomHorizontalFlip(0.5),
    ]
    if rand_augment is not None:
        steps.append(RandAugment(*rand_augment))
    steps.append(Normalize(mean, std))
    if erase_p > 0:
        steps.append(RandomErasing(erase_p))
    return Compose(steps)


class EvalViews:
    """The evaluation transform: resize the shorter side to ``size``, then ``views`` crops spread evenly along
    the longer side (VideoMAE's multi-crop test; ``views = 1``: the centre crop), normalised.

    uint8 (T, H, W, 3) -> float (M, C, T, size, size); M = 1 gives (C, T, size, size). Frames that are
    already ``size`` square pass through the resize and crop unchanged.
    """

    def __init__(self, size: int, views: int = 1, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        if views < 1:
            raise ValueError(f"views must be >= 1, got {views}")
        self.size, self.views = size, views
        self.norm = Normalize(mean, std)

    def __call__(self, clip: np.ndarray | Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = ToFloat()(ToClipTensor()(clip))  # (C, T, H, W) float in [0, 1]
        C, T, H, W = x.shape
        scale = self.size / min(H, W)
        h, w = max(self.size, round(H * scale)), max(self.size, round(W * scale))
        if (h, w) != (H, W):
            x = _resize(x, (h, w))  # (C, T, h, w)
        crops = []
        for i in range(self.views):
            frac = 0.5 if self.views == 1 else i / (self.views - 1)
            top, left = round((h - self.size) * frac), round((w - self.size) * frac)
            crops.append(self.norm(x[:, :, top:top + self.size, left:left + self.size]))
        return crops[0] if self.views == 1 else torch.stack(crops)  # (M, C, T, S, S)

    def batch(self, clips: np.ndarray) -> Tensor:
        """uint8 clips (B, T, H, W, 3) -> (B, C, T, S, S) (one view)."""
        return torch.stack([self(c) for c in clips])
