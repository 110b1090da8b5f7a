"""The label-efficiency protocol behind ``hi2m demo`` and ``benchmarks/synthface_study.py``, as run configs.

The paper's regime scaled down to a CPU: pretrain on an endless stream of unlabelled SynthFace clips
(``synthface-stream``: rendered on the fly in DataLoader workers, never the same clip twice), then
fine-tune on a few labelled clips per class (``synthface-pool``: a fixed pool rendered once, nested
budgets) from the pretrained encoder and from random initialisation. Both stages are ordinary engine runs
(:func:`hi2m.train.runner.pretrain` / :func:`~hi2m.train.runner.finetune`), each leaving a run directory
that ``hi2m evaluate``, ``visualize``, ``export`` and ``--resume`` accept. The probes and the HRD / HSM
measurements work on the saved models.

Geometry: 8 frames of 32x32, patch 8, tubelet 2 -> 4 x 4 x 4 = 64 tokens; rho = 0.75 (16 visible tokens;
the paper's 0.9 would leave 6). Encoder 128 wide x 4 deep, decoder 64 x 2, HRD policy 32 wide. The reasons
and the measurements behind each choice: docs/results-synthface.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hi2m.analysis import importance, region_share, spearman_rows, uniform_token_losses
from hi2m.data.synthface import synthface_config
from hi2m.data.synthface.dataset import (
    budget_indices,  # noqa: F401 - the study's budgets, re-exported
    render_split,
)
from hi2m.data.transforms import EvalViews
from hi2m.model import HI2MConfig
from hi2m.model.objectives import hsm_weights
from hi2m.model.vit import VideoEncoder
from hi2m.train.config import DEFAULTS, RunConfig, deep_merge
from hi2m.train.metrics import ConfusionMatrix, logged_column

FRAMES, SIZE = 8, 32
MODEL: dict[str, Any] = dict(patch_size=8, tubelet_size=2, embed_dim=128, depth=4, num_heads=4, decoder_dim=64,
                             decoder_depth=2, decoder_heads=2, hrd_dim=32, hrd_heads=2, mask_ratio=0.75)
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
    batch: int = 16  # clips per fine-tuning step, and per pretraining step unless pretrain_batch says otherwise
    pretrain_lr: float = 1.5e-3
    pretrain_batch: int | None = None  # clips per pretraining step (None: batch)
    finetune_steps: int = 1000
    finetune_lr: float = 1e-3
    layer_decay: float = 0.75
    drop_path: float = 0.1
    label_smoothing: float = 0.1
    probe_c: float = 1.0  # inverse L2 strength of the linear probe's logistic regression
    model: dict[str, Any] = field(default_factory=lambda: dict(MODEL))
    finetune_epoch: int = 2048  # clips per fine-tuning epoch: a small budget's pool is listed several times
    frames: int = FRAMES  # clip geometry of every stage: frames per clip and square frame size
    size: int = SIZE

    @property
    def pre_batch(self) -> int:
        """Clips per pretraining step."""
        return self.pretrain_batch or self.batch

    def synthface(self, preset: dict[str, Any]) -> dict[str, Any]:
        """A SynthFace preset (``UNLABELLED``, ``LABELLED``, ``WILD``) at this recipe's geometry."""
        return {**preset, "num_frames": self.frames, "size": self.size}


def _run_config(out: Path, name: str, seed: int, recipe: Recipe, changes: dict[str, Any]) -> RunConfig:
    base = {"seed": seed, "run": {"dir": str(out), "name": name},
            "data": {"root": str(out), "num_frames": recipe.frames, "image_size": recipe.size},
            "trainer": {"devices": 1, "enable_progress_bar": False, "checkpoint_every_n_minutes": 0.0,
                        "checkpoint_every_n_steps": 0}}
    return RunConfig.from_dict(deep_merge(deep_merge(DEFAULTS, base), changes))


def pretrain_config(variant: dict[str, Any], seed: int, recipe: Recipe, out: Path, name: str = "pretrain",
                    workers: int = 1, pool: int | None = None, prerender: int = 0) -> RunConfig:
    """Pretrain an HI2M variant (``VARIANTS`` values) for ``recipe.pretrain_steps`` steps of ``recipe.pre_batch``
    clips of the unlabelled stream: AdamW (0.9, 0.95), wd 0.05, warm-up (5%) then cosine to 1e-5, the HRD
    policy in its own parameter group, no augmentation (the clips are the model's size). ``pool``: read a
    finite set of that many stream clips for as many epochs as the steps need (VoxCeleb2 is finite in the
    paper); None: every clip new (one epoch). ``prerender``: render the pool once with that many processes
    before training and read it from memory (``workers`` is then 0: nothing is left for a worker to do)."""
    steps, batch = recipe.pretrain_steps, recipe.pre_batch
    per_epoch = pool if pool else steps * batch
    epochs = math.ceil(steps * batch / per_epoch)
    spe = per_epoch // batch
    return _run_config(out, name, seed, recipe, {
        "model": {"size": "micro", **recipe.model, **variant},
        "data": {"dataset": "synthface-stream", "batch_size": batch, "num_workers": 0 if prerender else workers,
                 "crop_scales": [1.0],
                 "options": {"synthface": {**recipe.synthface(UNLABELLED), "seed": 1000 + seed}, "clips_per_epoch": per_epoch,
                             "pool": pool, "prerender": prerender}},
        "optim": {"base_lr": recipe.pretrain_lr, "lr_scaling": "none", "min_lr": 1e-5, "weight_decay": 0.05,
                  "betas": [0.9, 0.95], "epochs": epochs, "warmup_epochs": max(steps // 20, 1) / spe},
        "trainer": {"max_steps": steps, "log_every_n_steps": max(steps // 40, 1)},
    })


def stream_config(cfg: RunConfig):
    """The SynthFace config of a :func:`pretrain_config` run's unlabelled stream (what its dataset renders)."""
    return synthface_config(**cfg.data.options["synthface"])


def finetune_config(pretrained: str | Path | None, budget: int, seed: int, recipe: Recipe, out: Path, name: str,
                    pool: int, test_clips: int) -> RunConfig:
    """Fine-tune on the first ``budget`` clips per class of a labelled pool of ``pool`` clips (nested
    budgets), encoder from ``pretrained`` (a model directory) or random init, for ``recipe.finetune_steps``
    steps: AdamW (0.9, 0.999), wd 0.05, layer decay, drop path, label smoothing, horizontal flips, warm-up
    (10%) then cosine. The last step is tested on ``test_clips`` clips of the test split: no model
    selection, so the test split never chooses anything."""
    steps, batch = recipe.finetune_steps, recipe.batch
    n_train = budget * NUM_CLASSES
    repeat = max(1, round(recipe.finetune_epoch / n_train))
    spe = n_train * repeat // batch
    return _run_config(out, name, seed, recipe, {
        "model": {"size": "micro", **recipe.model},
        "data": {"dataset": "synthface-pool", "batch_size": batch, "num_workers": 0, "temporal_views": 1,
                 "spatial_views": 1,
                 "options": {"synthface": {**recipe.synthface(LABELLED), "seed": 0}, "count": {"train": pool, "test": test_clips},
                             "per_class": {"train": budget}, "repeat": {"train": repeat}}},
        "optim": {"base_lr": recipe.finetune_lr, "lr_scaling": "none", "min_lr": 1e-6, "weight_decay": 0.05,
                  "betas": [0.9, 0.999], "epochs": math.ceil(steps / spe), "warmup_epochs": max(steps // 10, 1) / spe,
                  "layer_decay": recipe.layer_decay},
        "trainer": {"max_steps": steps, "log_every_n_steps": max(steps // 40, 1)},
        "finetune": {"pretrained": str(pretrained) if pretrained else None, "drop_path": recipe.drop_path,
                     "label_smoothing": recipe.label_smoothing, "mixup": 0.0, "cutmix": 0.0, "rand_augment": None,
                     "erase_p": 0.0, "crop_scale": None, "select": "last"},
    })


# ---- clips for the measurements ---------------------------------------------------------------------

def render_clips(synth: dict[str, Any], split: str, count: int, workers: int = 1) -> dict[str, np.ndarray]:
    """``count`` SynthFace clips of ``split`` as arrays: frames uint8 (n, T, H, W, 3), region bool
    (n, T, H, W), label int64 (n,), difficulty float64 (n,) (each clip's ``difficulty_score``).
    Splits are disjoint and balanced over the classes (clip i of a split is the same whatever ``count``
    the other splits have). ``workers``: processes rendering them (the first time; then from the cache)."""
    clips = render_split(synthface_config(**{"seed": 0, **synth}), split, count, workers)  # shared with the pool dataset
    return {"frames": np.stack([c.frames for c in clips]), "region": np.stack([c.region_masks for c in clips]),
            "label": np.asarray([c.label for c in clips], np.int64),
            "difficulty": np.asarray([c.difficulty["difficulty_score"] for c in clips], np.float64)}


def model_input(frames: np.ndarray, cfg=None) -> torch.Tensor:
    """uint8 clips (B, T, H, W, 3) -> the model's input (B, C, T, S, S), through the evaluation transform."""
    if cfg is None:
        return EvalViews(SIZE).batch(frames)
    return EvalViews(cfg.image_size, 1, cfg.pixel_mean, cfg.pixel_std).batch(frames)


def uar_war(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """UAR (mean of per-class recalls over the classes present) and WAR, in %, the engine's definition."""
    matrix = ConfusionMatrix(NUM_CLASSES)
    matrix.update(torch.as_tensor(pred), torch.as_tensor(target))
    result = matrix.compute()
    return 100 * result.uar, 100 * result.war


# ---- measurements on saved models ---------------------------------------------------------------------

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
    model.eval()
    gen = torch.Generator().manual_seed(seed)

    def hsm_vs_difficulty(clips: dict[str, np.ndarray]) -> float:
        w = hsm_weights(model(model_input(clips["frames"], model.cfg), generator=gen).sample_loss)  # (B,)
        return float(spearman_rows(w[None].double(), torch.from_numpy(clips["difficulty"])[None]))

    video = model_input(held_out["frames"], model.cfg)  # (B, C, T, H, W)
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


@torch.no_grad()
def encoder_features(encoder_state: dict[str, torch.Tensor] | None, data: dict[str, np.ndarray], seed: int,
                     recipe: Recipe = Recipe()) -> dict[str, np.ndarray]:
    """Frozen-encoder features (with its pretrained final norm) of every clip: ``mean`` = tokens
    mean-pooled, (n, D), the paper's linear-probe input; ``tokens`` = all tokens concatenated in grid
    order, (n, N x D), which keeps where each token sits (a local expression cue survives).
    ``encoder_state``: a pretraining model's state dict (None: random init from ``seed``)."""
    torch.manual_seed(seed)
    model = dict(recipe.model)
    cfg = HI2MConfig.from_name(model.pop("size", "micro"), num_frames=recipe.frames, image_size=recipe.size, **model)
    encoder = VideoEncoder(cfg)
    if encoder_state is not None:
        encoder.load_state_dict({k[len("encoder."):]: v for k, v in encoder_state.items() if k.startswith("encoder.")})
    encoder.eval()
    frames = data["frames"]
    z = torch.cat([encoder(model_input(frames[i:i + 64], cfg)) for i in range(0, len(frames), 64)])  # (n, N, D)
    return {"mean": z.mean(1).numpy(), "tokens": z.flatten(1).numpy()}


def pixel_features(data: dict[str, np.ndarray]) -> np.ndarray:
    """A no-learning reference: the last frame's pixels and the last-minus-first frame difference,
    (n, 2 x C x H x W) float32 -- what an expression changes, handed to the classifier directly."""
    video = data["frames"].astype(np.float32).transpose(0, 4, 1, 2, 3)  # (n, C, T, H, W)
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


def metrics_of(run_dir: Path) -> dict[str, Any]:
    """A fine-tuning run's test result (``metrics.json``): uar, war in %, and its confusion matrix."""
    import json

    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {"uar": 100 * m["uar"], "war": 100 * m["war"], "confusion": m["confusion"]}


def logged_curve(run_dir: Path, column: str, points: int = 20) -> list[tuple[int, float]]:
    """(step, mean of ``column``) over ``points`` equal windows of a run's ``logs/metrics.csv``."""
    rows = logged_column(run_dir, column)
    if not rows:
        return []
    last = rows[-1][0] + 1
    edges = np.linspace(0, last, points + 1)
    curve = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        window = [(s, v) for s, v in rows if lo <= s < hi]
        if window:
            curve.append((window[-1][0] + 1, float(np.mean([v for _, v in window]))))  # (steps done, mean)
    return curve
