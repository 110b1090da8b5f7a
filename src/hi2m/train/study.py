"""The label-efficiency protocol behind ``hi2m demo`` and ``benchmarks/synthface_study.py``.

The paper's regime scaled down to a CPU: pretrain on an endless stream of unlabelled SynthFace clips
(rendered on the fly in DataLoader workers, never the same clip twice), then measure how well a few
labelled clips per class teach a classifier, from the pretrained encoder and from random
initialisation, by full fine-tuning and by a linear probe of frozen features. Everything stays in
memory (no video files, no Lightning), so one seed of the whole protocol runs in minutes.

Geometry: 8 frames of 32x32, patch 8, tubelet 2 -> 4 x 4 x 4 = 64 tokens. Patch 8 gives the eyes, brows
and mouth tokens of their own; 64 tokens let two CPU cores take thousands of pretraining steps.
rho = 0.75 (16 visible tokens; the paper's 0.9 would leave 6). Encoder 128 wide x 4 deep, decoder 64 x 2,
HRD policy 32 wide. The reasons and the measurements behind each choice: docs/results-synthface.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

FRAMES, SIZE = 8, 32
MODEL: dict[str, Any] = dict(num_frames=FRAMES, image_size=SIZE, patch_size=8, tubelet_size=2, embed_dim=128,
                             depth=4, num_heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=2, hrd_dim=32,
                             hrd_heads=2, mask_ratio=0.75)
# unlabelled pretraining data and the labelled data: VoxCeleb2-like face crops (the face fills the frame)
UNLABELLED: dict[str, Any] = dict(preset="voxceleb2", num_frames=FRAMES, size=SIZE)
LABELLED: dict[str, Any] = dict(preset="voxceleb2", num_frames=FRAMES, size=SIZE)
# in-the-wild clips (DFEW-like nuisance): a transfer check, and where the HSM difficulty record varies most
WILD: dict[str, Any] = dict(preset="dfew", num_frames=FRAMES, size=SIZE)
NUM_CLASSES = 7

HI2M_VARIANT: dict[str, Any] = dict(mask_type="hrd", hsm=True, target="dual")
VARIANTS: dict[str, dict[str, Any]] = {  # pretraining variants: the paper's Table 2 rows and Table 9 targets
    "HI2M": HI2M_VARIANT,
    "baseline (tube)": dict(mask_type="tube", hsm=False, target="dual"),
    "+HRD": dict(mask_type="hrd", hsm=False, target="dual"),
    "+HSM": dict(mask_type="tube", hsm=True, target="dual"),
    "appearance target": dict(HI2M_VARIANT, target="appearance"),
    "motion target": dict(HI2M_VARIANT, target="motion"),
    # not a paper row: VideoMAE V2's decoder masking (the decoder reconstructs half of the masked tokens)
    "HI2M, decoder mask 0.5": dict(HI2M_VARIANT, decoder_mask_ratio=0.5),
}


@dataclass(frozen=True)
class Recipe:
    """Schedules shared by every row of a study (the same for pretrained and random-init models)."""

    pretrain_steps: int = 1500
    batch: int = 16
    pretrain_lr: float = 1.5e-3
    finetune_steps: int = 1000
    finetune_lr: float = 1e-3
    layer_decay: float = 0.75
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    probe_c: float = 1.0  # inverse L2 strength of the linear probe's logistic regression
    model: dict[str, Any] = field(default_factory=lambda: dict(MODEL))


Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---- data ---------------------------------------------------------------------------------------------

def render_clips(synth: dict[str, Any], split: str, count: int) -> dict[str, np.ndarray]:
    """``count`` SynthFace clips of ``split`` as arrays: video uint8 (n, C, T, H, W), region bool
    (n, T, H, W), label int64 (n,), difficulty float64 (n,) (each clip's ``difficulty_score``).
    Splits are disjoint and balanced over the classes (clip i of a split is the same whatever ``count``
    the other splits have)."""
    from hi2m.data.synthface import generate_clip, synthface_config

    counts = {f"num_{name}": (count if name == split else 0) for name in ("train", "val", "test")}
    cfg = synthface_config(**{"seed": 0, **synth, **counts})
    video = np.empty((count, 3, cfg.num_frames, cfg.size, cfg.size), np.uint8)
    region = np.empty((count, cfg.num_frames, cfg.size, cfg.size), bool)
    label, difficulty = np.empty(count, np.int64), np.empty(count, np.float64)
    for i in range(count):
        clip = generate_clip(cfg, split, i)
        video[i] = clip.frames.transpose(3, 0, 1, 2)  # (T, H, W, C) -> (C, T, H, W)
        region[i] = clip.region_masks
        label[i], difficulty[i] = clip.label, clip.difficulty["difficulty_score"]
    return {"video": video, "region": region, "label": label, "difficulty": difficulty}


def normalise(video: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clips (B, C, T, H, W) -> float, ImageNet mean / std (the encoder's pixel normalisation)."""
    from hi2m.model.config import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return (torch.as_tensor(video).float() / 255 - mean) / std  # (B, C, T, H, W)


class _StreamTransform:
    """uint8 (T, H, W, 3) from the stream -> normalised float (C, T, H, W); frames are the model's size."""

    def __call__(self, frames: np.ndarray, generator=None) -> torch.Tensor:
        return normalise(frames.transpose(3, 0, 1, 2)[None])[0]


def budget_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` clips of every class, sorted (nested: a larger budget holds the smaller)."""
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)]
    short = [c for c, p in enumerate(picks) if len(p) < per_class]
    if short:
        raise ValueError(f"the labelled pool has fewer than {per_class} clips of classes {short}")
    return np.sort(np.concatenate(picks))


# ---- pretraining ---------------------------------------------------------------------------------------

def stream_clips(count: int, seed: int = 0) -> np.ndarray:
    """The first ``count`` clips of the unlabelled stream that :func:`pretrain_stream` reads for ``seed``,
    rendered at once: uint8 (count, C, T, H, W). Lets several runs share one rendering."""
    from hi2m.data.synthface import generate_stream_clip, synthface_config

    cfg = synthface_config(seed=1000 + seed, **UNLABELLED)
    out = np.empty((count, 3, cfg.num_frames, cfg.size, cfg.size), np.uint8)
    for k in range(count):
        out[k] = generate_stream_clip(cfg, k).frames.transpose(3, 0, 1, 2)  # (T, H, W, C) -> (C, T, H, W)
    return out


def pool_order(n: int, steps: int, batch: int, seed: int, reuse: bool = False) -> np.ndarray:
    """Which of ``n`` pooled clips each step reads, (steps, batch): epochs over the pool, each in a new
    seeded order, every clip once per epoch; more than one epoch only with ``reuse``."""
    if n < steps * batch and not reuse:
        raise ValueError(f"{n} clips cannot feed {steps} steps of {batch} new clips (reuse=False)")
    rng = np.random.default_rng(seed)
    epochs = -(-steps * batch // n)  # ceil
    return np.concatenate([rng.permutation(n) for _ in range(epochs)])[:steps * batch].reshape(steps, batch)


def pretrain_stream(variant: dict[str, Any], seed: int, recipe: Recipe = Recipe(), workers: int = 1,
                    log: Log = _quiet, clips: np.ndarray | None = None,
                    reuse: bool = False) -> tuple[Any, list[tuple[int, float]]]:
    """Pretrain an HI2M variant (``VARIANTS`` values: mask_type, hsm, target) for ``recipe.pretrain_steps``
    steps of ``recipe.batch`` clips never seen before: AdamW (0.9, 0.95), wd 0.05, warmup then cosine, the
    HRD policy in its own parameter group. The clips come from the unlabelled stream, rendered on the fly in
    ``workers`` DataLoader workers, or from ``clips`` (uint8 (n, C, T, H, W), e.g. :func:`stream_clips`,
    n >= steps x batch), read once in a seeded random order (``reuse``: as many epochs over ``clips`` as the
    steps need, each in a new order -- a finite unlabelled set, as VoxCeleb2 is in the paper). Returns the model (eval mode) and the curve of
    the training batches' mean Eq. 1 loss, (step, loss), about 20 points."""
    from torch.utils.data import DataLoader

    from hi2m.data.synthface import SynthFaceStream, synthface_config
    from hi2m.model import HI2M, HI2MConfig
    from hi2m.train.optim import GroupRule, WarmupCosine, build_adamw

    torch.manual_seed(seed)
    steps, batch = recipe.pretrain_steps, recipe.batch
    model = HI2M(HI2MConfig.from_name("micro", **recipe.model, **variant))
    opt = build_adamw(model, lr=recipe.pretrain_lr, weight_decay=0.05, betas=(0.9, 0.95),
                      rules=(GroupRule("masker.policy.", "hrd", lr_scale=1.0),))
    sched = WarmupCosine(total_steps=steps, warmup_steps=max(steps // 20, 1), base_lr=recipe.pretrain_lr, min_lr=1e-5)
    if clips is None:
        stream = SynthFaceStream(synthface_config(seed=1000 + seed, **UNLABELLED), clips_per_epoch=steps * batch,
                                 transform=_StreamTransform())
        batches = (item["video"] for item in DataLoader(stream, batch_size=batch, num_workers=workers))
    else:
        order = pool_order(len(clips), steps, batch, seed, reuse)  # (steps, batch)
        batches = (normalise(clips[np.sort(rows)]) for rows in order)
    gen = torch.Generator().manual_seed(seed)
    every = max(steps // 20, 1)
    curve, window, t0 = [], [], time.perf_counter()
    model.train()
    for step, video in enumerate(batches):  # video (B, C, T, H, W)
        sched.apply(opt, step)
        out = model(video, generator=gen)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        window.append(float(out.sample_loss.mean()))
        if (step + 1) % every == 0 or step == steps - 1:
            curve.append((step + 1, sum(window) / len(window)))
            window = []
            if (step + 1) % (5 * every) == 0 or step == steps - 1:
                log(f"pretraining step {step + 1}/{steps}: reconstruction loss {curve[-1][1]:.4f} "
                    f"({time.perf_counter() - t0:.0f}s)")
    return model.eval(), curve


@torch.no_grad()
def pretrain_measurements(model, held_out: dict[str, np.ndarray], wild: dict[str, np.ndarray] | None = None,
                          seed: int = 99) -> dict[str, float]:
    """What the pretrained model learned, on held-out clips like its pretraining data:

    - ``rec``: mean per-token loss under uniform random masking (8 draws);
    - ``hsm_difficulty_spearman``: Spearman between HSM's weight (Eq. 3) and SynthFace's per-clip
      difficulty record, over the held-out clips (and ``..._wild`` over ``wild`` clips, where the
      difficulty record varies most);
    - HRD models: ``region_ratio`` = P-mass on the expression regions / their area share (1 = uniform),
      ``hrd_spearman`` = Spearman(P, uniform-mask token loss) per clip, averaged.
    """
    from hi2m.analysis import importance, region_share, spearman_rows, uniform_token_losses
    from hi2m.objectives import hsm_weights

    gen = torch.Generator().manual_seed(seed)

    def hsm_vs_difficulty(clips: dict[str, np.ndarray]) -> float:
        w = hsm_weights(model(normalise(clips["video"]), generator=gen).sample_loss)  # (B,)
        return float(spearman_rows(w[None].double(), torch.from_numpy(clips["difficulty"])[None]))

    video = normalise(held_out["video"])  # (B, C, T, H, W)
    tok, _ = uniform_token_losses(model, video, 8, gen)  # (B, N)
    meas = {"rec": float(tok.mean()), "hsm_difficulty_spearman": hsm_vs_difficulty(held_out)}
    if wild is not None:
        meas["hsm_difficulty_spearman_wild"] = hsm_vs_difficulty(wild)
    if model.cfg.mask_type == "hrd":
        p = importance(model, video)  # (B, N)
        h, a = region_share(model, video, torch.from_numpy(held_out["region"]))
        meas["region_ratio"] = float((h / a).mean())
        meas["region_mass"], meas["region_area"] = float(h.mean()), float(a.mean())
        meas["hrd_spearman"] = float(spearman_rows(p.double(), tok.double()).mean())
    return meas


# ---- fine-tuning, probing, scoring ----------------------------------------------------------------------

def uar_war(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Unweighted average recall (mean of per-class recalls over the classes present) and accuracy, in %."""
    recalls = [float((pred[target == c] == c).mean()) for c in range(NUM_CLASSES) if (target == c).any()]
    return 100 * float(np.mean(recalls)), 100 * float((pred == target).mean())


@torch.no_grad()
def predict(model, data: dict[str, np.ndarray], batch: int = 64) -> np.ndarray:
    """Predicted class of every clip of ``data``."""
    model.eval()
    return np.concatenate([model(normalise(data["video"][i:i + batch])).argmax(-1).numpy()
                           for i in range(0, len(data["label"]), batch)])


def finetune_clips(state: dict[str, torch.Tensor] | None, train: dict[str, np.ndarray], test: dict[str, np.ndarray],
                   idx: np.ndarray, seed: int, recipe: Recipe = Recipe(), eval_every: int = 0,
                   log: Log = _quiet) -> tuple[Any, dict[str, Any]]:
    """Fine-tune a classifier (encoder from ``state``, or random init when None) on ``train[idx]`` for
    ``recipe.finetune_steps`` steps: AdamW (0.9, 0.999), wd 0.05, layer decay, drop path, label smoothing,
    horizontal flips, batch ``recipe.batch`` drawn with replacement. The last step is evaluated: no model
    selection, so the test split never chooses anything. ``eval_every`` > 0 also records a test-UAR curve
    (for plotting only). Returns (model, {uar, war, train_uar, curve, pred})."""
    from hi2m.model import HI2MConfig
    from hi2m.model.classifier import VideoClassifier
    from hi2m.train.mixup import label_smoothing_cross_entropy
    from hi2m.train.optim import WarmupCosine, build_adamw

    torch.manual_seed(seed)
    steps = recipe.finetune_steps
    model = VideoClassifier(HI2MConfig.from_name("micro", **recipe.model, drop_path=recipe.drop_path), NUM_CLASSES)
    if state is not None:
        model.load_encoder(state)
    opt = build_adamw(model, lr=recipe.finetune_lr, weight_decay=0.05, betas=(0.9, 0.999),
                      layer_decay=recipe.layer_decay)
    sched = WarmupCosine(total_steps=steps, warmup_steps=max(steps // 10, 1), base_lr=recipe.finetune_lr, min_lr=1e-6)
    rng = np.random.default_rng(seed)
    labels = torch.from_numpy(train["label"])
    curve = []
    for step in range(steps):
        model.train()
        pick = idx[rng.integers(0, len(idx), recipe.batch)]  # (B,)
        video = normalise(train["video"][pick])  # (B, C, T, H, W)
        flip = torch.from_numpy(rng.random(recipe.batch) < 0.5)
        video = torch.where(flip.view(-1, 1, 1, 1, 1), video.flip(-1), video)
        sched.apply(opt, step)
        loss = label_smoothing_cross_entropy(model(video), labels[pick], recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
            curve.append((step + 1, uar_war(predict(model, test), test["label"])[0]))
            log(f"fine-tuning step {step + 1}/{steps}: test UAR {curve[-1][1]:.1f}")
    pred = predict(model, test)
    uar, war = uar_war(pred, test["label"])
    train_uar = uar_war(predict(model, {k: v[idx] for k, v in train.items()}), train["label"][idx])[0]
    return model, {"uar": uar, "war": war, "train_uar": train_uar, "curve": curve + [(steps, uar)],
                   "pred": pred.tolist()}


@torch.no_grad()
def encoder_features(state: dict[str, torch.Tensor] | None, data: dict[str, np.ndarray], seed: int,
                     recipe: Recipe = Recipe()) -> dict[str, np.ndarray]:
    """Frozen-encoder features (with its pretrained final norm) of every clip: ``mean`` = tokens
    mean-pooled, (n, D), the paper's linear-probe input; ``tokens`` = all tokens concatenated in grid
    order, (n, N x D), which keeps where each token sits (a local expression cue survives)."""
    from hi2m.model import HI2MConfig
    from hi2m.model.vit import VideoEncoder

    torch.manual_seed(seed)
    encoder = VideoEncoder(HI2MConfig.from_name("micro", **recipe.model))
    if state is not None:
        encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
    encoder.eval()
    z = torch.cat([encoder(normalise(data["video"][i:i + 64])) for i in range(0, len(data["label"]), 64)])  # (n, N, D)
    return {"mean": z.mean(1).numpy(), "tokens": z.flatten(1).numpy()}


def pixel_features(data: dict[str, np.ndarray]) -> np.ndarray:
    """A no-learning reference: the last frame's pixels and the last-minus-first frame difference,
    (n, 2 x C x H x W) float32 -- what an expression changes, handed to the classifier directly."""
    video = data["video"].astype(np.float32)  # (n, C, T, H, W)
    last, first = video[:, :, -1], video[:, :, 0]  # (n, C, H, W)
    return np.concatenate([last.reshape(len(video), -1), (last - first).reshape(len(video), -1)], 1)


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 c: float = 1.0) -> tuple[float, float]:
    """Logistic regression on standardised frozen features (L2, inverse strength ``c``): test (UAR, WAR)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    clf.fit(train_x, train_y)
    return uar_war(clf.predict(test_x), test_y)
