"""GPU truth in one command: correctness, step cost against transformers, the data path, and the
few-label question at GPU scale, for the first GPU this project is lent.

    python benchmarks/gpu_check.py                      # on the GPU, within 8 minutes (--budget-minutes)
    python benchmarks/gpu_check.py --device cpu --smoke # every stage at tiny sizes on a CPU (CI)

Stages, each written to ``OUT/gpu_check.json`` (and ``OUT/gpu_check.md``, a markdown table ready for
``benchmarks/RESULTS.md``) the moment it finishes, so a run cut short keeps what it measured:

1. ``env``: device, memory, torch / CUDA / cuDNN versions, which SDPA backends are enabled;
2. ``correctness``: the encoder against transformers' VideoMAE, the objectives of Eq. 1-4 and 7 and a
   whole HI2M loss against a float64 reference on the CPU, in fp32 and under bf16 autocast, each with
   the tolerance it must meet (written in the JSON beside the error);
3. ``step``: one pretraining step (forward, backward, AdamW) of hi2m's full method, with and without
   decoder masking 0.5, against transformers' ``VideoMAEForPreTraining`` (SDPA on both sides), per
   encoder size and precision, eager and compiled: time, peak memory, MFU against the device's dense
   bf16 peak (the peak used is stated), and the largest batch that fits;
4. ``data``: decode + pretraining transforms, clips/s of one worker on this machine's CPUs and of a
   DataLoader with several, and how many workers one GPU needs at the measured step rate;
5. ``study``: the label-efficiency protocol of ``hi2m demo`` with the ``small`` encoder at 16x64x64:
   pretraining on the endless SynthFace stream for a wall-clock budget, then fine-tuning at 10 and 300
   clips per class from the pretrained and the random encoder (one seed), beside the CPU study.

``--budget-minutes N`` sizes the stages so the run fits and prints, before it starts, what it will skip;
what overruns its estimate is skipped at run time with the reason recorded. docs/gpu.md explains every
field.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_step import SavedActivations, _sync, alternate, build_pair, make_step  # noqa: E402 - a sibling benchmark

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s; the first name that
# occurs in torch.cuda.get_device_name() wins. Unknown devices use the bf16 matmul rate measured here.
DENSE_BF16_PEAK = [
    ("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("GH200", 989e12), ("B200", 2250e12),
    ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L40", 181e12), ("L4", 121e12), ("A10", 125e12),
    ("RTX 4090", 165e12), ("RTX 3090", 71e12), ("A6000", 155e12),
]

# The CPU study at 300 and 10 labelled clips per class, seed 0, engine (docs/results-synthface.md,
# "After the move to the training engine"; the demo's 2,000-step encoder for the 10/class row).
CPU_STUDY = {"geometry": "8x32x32, micro-sized encoder (128 x 4), 1,500-2,000 pretraining steps, 2 CPU cores",
             "uar": {"300": {"HI2M": 25.1, "random init": 18.6}, "10": {"HI2M": 16.9, "random init": 14.9}}}


@dataclass(frozen=True)
class Sizes:
    """What each stage measures; ``FULL`` on a GPU, ``SMOKE`` for a CPU in CI."""

    sizes: tuple[str, ...] = ("base", "small")
    frames: int = 16
    image: int = 224
    batch: int = 8
    steps: int = 5  # timed steps per row (median), after ``warmup``
    warmup: int = 2
    max_batch: int = 1024  # the largest-batch search stops here
    compile_backend: str = "inductor"
    parity_size: str = "base"  # the encoder compared with transformers
    data_clips: int = 24  # videos written for the data-path stage
    data_seconds: float = 4.0  # length of each
    data_workers: int = 8
    data_repeats: int = 4  # windows per decoded file in the data stage (the peers' repeated sampling)
    study_model: tuple[tuple[str, Any], ...] = (("size", "small"), ("patch_size", 8), ("tubelet_size", 2),
                                                ("mask_ratio", 0.9))
    study_frames: int = 16
    study_size: int = 64
    study_batch: int = 64
    study_pretrain_lr: float = 1.5e-3
    study_finetune_lr: float = 5e-4
    study_finetune_steps: int = 600
    study_few_steps: int = 200
    study_budgets: tuple[int, int] = (300, 10)
    study_test: int = 700
    study_calibration_steps: int = 30  # a throwaway pretraining run that measures the step time first
    study_min_steps: int = 50
    study_pretrain_cap_s: float = float("inf")  # smoke: a few seconds of pretraining whatever the budget


FULL = Sizes()
SMOKE = Sizes(sizes=("micro",), frames=4, image=32, batch=2, steps=2, warmup=1, max_batch=4,
              compile_backend="aot_eager", parity_size="micro", data_clips=3, data_seconds=1.0, data_workers=2, data_repeats=2,
              study_model=(("size", "micro"), ("patch_size", 8), ("tubelet_size", 2), ("mask_ratio", 0.75)),
              study_frames=8, study_size=32, study_batch=4, study_finetune_steps=3, study_few_steps=2,
              study_budgets=(3, 1), study_test=14, study_calibration_steps=12, study_min_steps=4,
              study_pretrain_cap_s=3.0)

# Planned seconds per item on a GPU (and on a CPU at smoke sizes), in the order items are chosen when the
# budget is short: what matters most first. The study takes what is left, at least ``STUDY_MIN``.
ITEM_COST = {"env": (5, 1), "correctness": (40, 8), "step-eager": (25, 4), "data": (45, 6),
             "step-fp32": (25, 3), "max-batch": (40, 2), "step-compiled": (100, 15)}
STUDY_MIN = (200, 40)


# ---- results: written as soon as each stage finishes -------------------------------------------


class Record:
    """The run's results: ``OUT/gpu_check.json`` and the markdown table ``OUT/gpu_check.md``, rewritten
    atomically after every item so a run cut short keeps everything it measured."""

    def __init__(self, out: Path, meta: dict[str, Any]):
        self.out = out
        self.data: dict[str, Any] = {"meta": meta, "plan": {}, "stages": {}}

    def put(self, stage: str, key: str | None, value: Any) -> None:
        if key is None:
            self.data["stages"][stage] = value
        else:
            self.data["stages"].setdefault(stage, {})[key] = value
        self.flush()

    def flush(self) -> None:
        from hi2m.io.files import atomic_write

        text = json.dumps(self.data, indent=2, default=str) + "\n"
        try:
            md = markdown(self.data)
        except Exception as exc:  # noqa: BLE001 - the table is a view of the JSON; never lose the run over it
            md = f"(the table could not be drawn: {type(exc).__name__}: {exc}; see gpu_check.json)\n"
        # the table first: whoever sees a stage in the JSON finds it in the table too, even if the run is killed
        # between the two writes
        atomic_write(self.out / "gpu_check.md", lambda p: Path(p).write_text(md))
        atomic_write(self.out / "gpu_check.json", lambda p: Path(p).write_text(text))


class Clock:
    """The run's deadline: items whose planned cost no longer fits are skipped, with the reason."""

    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def _autocast(device: str, precision: str):
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


# ---- 1. environment --------------------------------------------------------------------------


def stage_env(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
                           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        env.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", sm_count=props.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16_supported=torch.cuda.is_bf16_supported())
        env["sdpa_backends"] = {
            "flash": torch.backends.cuda.flash_sdp_enabled(), "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
            "cudnn": torch.backends.cuda.cudnn_sdp_enabled(), "math": torch.backends.cuda.math_sdp_enabled()}
        env["sdpa_kernels_run"] = sdpa_kernels_run(device)
    else:
        env.update(name=platform.processor() or platform.machine(), sdpa_backends={"math/cpu-flash": True})
    peak, source = dense_bf16_peak(device)
    env.update(bf16_peak_flops=peak, bf16_peak_tflops=round(peak / 1e12, 3), bf16_peak_source=source)
    return env


def sdpa_kernels_run(device: str) -> dict[str, Any]:
    """Which SDPA kernels accept hi2m's attention shape (bf16, head dim 64) when forced one at a time."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 12, 1568, 64, device=device, dtype=torch.bfloat16)  # (B, heads, N, head dim), base at 224
    ran = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
        try:
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, q, q)
            ran[backend.name.lower()] = True
        except RuntimeError as exc:
            ran[backend.name.lower()] = f"no: {str(exc).splitlines()[0][:120]}"
    return ran


def dense_bf16_peak(device: str) -> tuple[float, str]:
    """(FLOP/s, where the number comes from): the data-sheet peak of a known GPU, else a measured rate."""
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(device)
        for key, peak in DENSE_BF16_PEAK:
            if key in name:
                return peak, f"data sheet, dense bf16 ({key})"
    from pretrain_step import matmul_rate

    return matmul_rate(torch.bfloat16, device, n=4096 if device.startswith("cuda") else 512), "measured bf16 matmul"


# ---- 2. correctness on the device ---------------------------------------------------------------

# fp32: TF32 is switched off for these checks, so fp32 agrees to float rounding. bf16 autocast: 8 bits of
# mantissa (relative step 2^-8 = 0.4%) through a dozen layers; errors are relative to the largest value.
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-12))


def stage_correctness(device: str, sz: Sizes) -> dict[str, Any]:
    """Relative max errors on the device against references, with pass/fail per tolerance."""
    from hi2m.io.videomae import from_hf_videomae
    from hi2m.model import HI2M, HI2MConfig
    from hi2m.model import objectives as obj
    from hi2m.model.masking import Mask, tube_visible

    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    checks: dict[str, Any] = {}
    try:
        g = torch.Generator().manual_seed(0)
        cfg = HI2MConfig.from_name(sz.parity_size, num_frames=sz.frames, image_size=sz.image, mask_ratio=0.9)
        hf = _hf_encoder(cfg).eval()
        ours = from_hf_videomae(hf).eval()
        video = torch.randn(2, 3, cfg.num_frames, cfg.image_size, cfg.image_size, generator=g)  # (B, C, T, H, W)
        mask = Mask.from_visible(tube_visible(2, cfg.grid, 0.9, g), cfg.num_tokens)
        with torch.no_grad():
            want = hf.double()(video.double().transpose(1, 2), bool_masked_pos=mask.bool_masked).last_hidden_state
            hf.float()
        hf, ours = hf.to(device), ours.to(device)
        for prec in ("fp32", "bf16"):
            with torch.no_grad(), _autocast(device, prec):
                theirs = hf(video.to(device).transpose(1, 2), bool_masked_pos=mask.bool_masked.to(device)).last_hidden_state
                mine, _ = ours.forward_encoder(video.to(device), _mask_to(mask, device))
            checks[f"encoder vs float64 transformers ({prec})"] = _check(mine, want, prec)
            checks[f"encoder vs transformers on device ({prec})"] = _check(mine, theirs, prec)
        del hf, ours

        # Eq. 1-4 and 7: hi2m.model.objectives on the device against reference_equations, written
        # independently here in float64 on the CPU (the objectives compute in float32 by design)
        clip = torch.rand(4, 3, 8, 32, 32, generator=g, dtype=torch.float64)  # (B, C, T, H, W)
        pred = torch.randn(4, 64, 2 * 8 * 8 * 3, generator=g, dtype=torch.float64)  # (B, N, ts*p*p*C)
        masked = torch.rand(4, 64, generator=g) < 0.75  # (B, N)
        logits = torch.randn(4, 64, generator=g, dtype=torch.float64)

        def equations(x, p, lg, dtype):
            t = obj.dual_targets(x.to(dtype), patch_size=8, tubelet_size=2)  # (B, N, D)
            tok = obj.token_losses(p.to(dtype), t)  # (B, N)
            ls = obj.sample_losses(tok)  # (B,)
            w = obj.hsm_weights(ls)  # (B,)
            lp = torch.log_softmax(lg.to(dtype), -1)  # (B, N)
            return {"Eq. 1 dual targets": t, "Eq. 1 token losses": tok, "Eq. 2-3 HSM weights": w,
                    "Eq. 4 HSM loss": obj.hsm_loss(ls, w), "Eq. 7 HRD loss": obj.hrd_loss(lp, tok, masked.to(x.device))}

        ref = reference_equations(clip, pred, logits, masked, patch=8, tubelet=2)
        for prec, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            got = equations(clip.to(device), pred.to(device), logits.to(device), dtype)
            for name in ref:
                checks[f"{name} ({prec} inputs)"] = _check(got[name], ref[name], prec)

        # a whole HI2M loss (HRD + HSM + dual target) with a fixed mask: device vs float64 on the CPU
        torch.manual_seed(0)
        small = HI2MConfig.from_name("micro", num_frames=8, image_size=32, patch_size=8, mask_type="hrd")
        model = HI2M(small).eval()
        x = torch.rand(4, 3, 8, 32, 32, generator=g)
        m = Mask.from_visible(tube_visible(4, small.grid, small.mask_ratio, g), small.num_tokens)
        with torch.no_grad():
            want_loss = model.double()(x.double(), mask=m).loss
            model.float().to(device)
            for prec in ("fp32", "bf16"):
                with _autocast(device, prec):
                    got_loss = model(x.to(device), mask=_mask_to(m, device)).loss
                checks[f"HI2M loss, Eq. 8 ({prec})"] = _check(got_loss, want_loss, prec)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    checks["all_pass"] = all(c["pass"] for c in checks.values() if isinstance(c, dict))
    checks["tolerances"] = {k: f"max |got - ref| / max |ref| <= {v}" for k, v in TOLERANCE.items()}
    return checks


def reference_equations(video: torch.Tensor, pred: torch.Tensor, logits: torch.Tensor, masked: torch.Tensor,
                        patch: int, tubelet: int) -> dict[str, torch.Tensor]:
    """Eq. 1-4 and 7 in float64, one token (a tubelet of ``tubelet`` frames x ``patch`` x ``patch``) at a time,
    tokens in time-major order: the dual targets (the normalised first frame | the differences of consecutive
    normalised frames, each (row, column, channel)), per-token MSE, per-clip mean, HSM's softplus weights over
    the batch (population std + 1e-6), their weighted mean, and the REINFORCE loss with the token loss as
    reward averaged over the masked tokens of each clip, then over clips."""
    x = video.double()  # (B, C, T, H, W)
    B, C, T, H, W = x.shape
    tokens = []
    for t0 in range(0, T, tubelet):
        for r0 in range(0, H, patch):
            for c0 in range(0, W, patch):
                cube = x[:, :, t0:t0 + tubelet, r0:r0 + patch, c0:c0 + patch].reshape(B, C, -1)  # (B, C, ts*p*p)
                norm = (cube - cube.mean(-1, keepdim=True)) / (cube.std(-1, keepdim=True) + 1e-6)
                norm = norm.reshape(B, C, tubelet, patch, patch)
                appearance = norm[:, :, 0].permute(0, 2, 3, 1).reshape(B, -1)  # (B, p*p*C)
                motion = (norm[:, :, 1:] - norm[:, :, :-1]).permute(0, 2, 3, 4, 1).reshape(B, -1)
                tokens.append(torch.cat([appearance, motion], 1))
    target = torch.stack(tokens, 1)  # (B, N, D)
    tok = (pred.double() - target).pow(2).mean(-1)  # (B, N)
    per_clip = tok.mean(-1)  # (B,)
    z = (per_clip - per_clip.mean()) / ((per_clip - per_clip.mean()).pow(2).mean().sqrt() + 1e-6)
    w = torch.log1p(torch.exp(z))  # softplus
    log_p = torch.log_softmax(logits.double(), -1)  # (B, N)
    m = masked.double()
    hrd = (-(log_p * tok * m).sum(1) / m.sum(1)).mean()
    return {"Eq. 1 dual targets": target, "Eq. 1 token losses": tok, "Eq. 2-3 HSM weights": w,
            "Eq. 4 HSM loss": (w * per_clip).mean(), "Eq. 7 HRD loss": hrd}


def _check(got: torch.Tensor, want: torch.Tensor, prec: str) -> dict[str, Any]:
    err = _rel_err(got, want)
    return {"rel_err": err, "tol": TOLERANCE[prec], "pass": bool(err <= TOLERANCE[prec])}


def _mask_to(mask, device):
    from hi2m.model.masking import Mask

    return Mask.from_visible(mask.visible.to(device), mask.bool_masked.shape[1])


def _hf_encoder(cfg):
    from transformers import VideoMAEConfig, VideoMAEModel

    hf = VideoMAEModel(VideoMAEConfig(
        image_size=cfg.image_size, num_frames=cfg.num_frames, patch_size=cfg.patch_size, tubelet_size=cfg.tubelet_size,
        hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads,
        intermediate_size=4 * cfg.embed_dim, use_mean_pooling=False, attn_implementation="sdpa"))
    with torch.no_grad():  # non-trivial values everywhere: fresh LayerNorms and zero biases hide mapping errors
        for p in hf.parameters():
            p.normal_(0, 0.02 if p.ndim > 1 else 0.2)
    return hf


# ---- 3. the pretraining step ---------------------------------------------------------------------

PEERS = ("transformers", "hi2m", "hi2m-dec0.5")


def step_row(size: str, prec: str, compiled: bool, device: str, sz: Sizes, peak: float,
             eager: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median step time, peak memory, FLOPs and MFU of each model in ``PEERS``, alternated step by step.
    Compiled rows take their FLOPs from ``eager`` (the same models' eager row): the counter cannot see
    inside compiled graphs."""
    from torch.utils.flop_counter import FlopCounterMode

    from hi2m.model.compiled import compile_blocks

    cfg, models = build_pair(size, sz.frames, sz.image, device)
    models = {k: v for k, v in models.items() if k in PEERS}
    if compiled:
        for name, model in models.items():
            if name == "transformers":
                models[name] = torch.compile(model, backend=sz.compile_backend)
            else:
                compile_blocks(model, backend=sz.compile_backend)
    video = torch.randn(sz.batch, 3, sz.frames, sz.image, sz.image, generator=torch.Generator().manual_seed(0)).to(device)
    steps = {k: make_step(k, m, video, cfg, device, prec, fused=device.startswith("cuda")) for k, m in models.items()}
    out: dict[str, Any] = {}
    for name, (forward, step) in steps.items():
        counter, saved = FlopCounterMode(display=False), SavedActivations()
        if compiled:
            flops = (eager or {}).get(name, {}).get("flops")
        else:
            with counter, torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
                forward().backward()
            models[name].zero_grad(set_to_none=True)
            flops = counter.get_total_flops()
        t0 = time.perf_counter()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        step()
        _sync(device)
        first = time.perf_counter() - t0
        if device.startswith("cuda"):
            memory = torch.cuda.max_memory_allocated() / 2**20
        else:
            memory = None if compiled else saved.megabytes
        out[name] = {"flops": flops, "memory_mb": memory, "first_step_s": first}
    times = alternate({k: v[1] for k, v in steps.items()}, sz.warmup, sz.steps, device)
    for name, r in out.items():
        r["step_s"] = statistics.median(times[name])
        r["clips_per_s"] = sz.batch / r["step_s"]
    ref = out["transformers"]
    for name, r in out.items():
        r["time_vs_transformers"] = r["step_s"] / ref["step_s"]
        r["memory_vs_transformers"] = r["memory_mb"] / ref["memory_mb"] if r["memory_mb"] and ref["memory_mb"] else None
        r["mfu"] = r["flops"] / (r["step_s"] * peak) if r["flops"] and peak else None
    out["memory_kind"] = "peak CUDA allocated" if device.startswith("cuda") else "activations saved for backward"
    hf = getattr(models["transformers"], "_orig_mod", models["transformers"])
    out["transformers_attention"] = getattr(hf.config, "_attn_implementation", None)
    del models, steps
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def max_batch(size: str, prec: str, device: str, sz: Sizes) -> dict[str, Any]:
    """The largest power-of-two batch for which one step of each peer fits (CUDA OOM is the limit)."""
    cfg, models = build_pair(size, sz.frames, sz.image, device)
    found: dict[str, Any] = {}
    for name in PEERS:
        model, best, batch = models[name], 0, max(1, sz.batch)
        while batch <= sz.max_batch:
            video = torch.randn(batch, 3, sz.frames, sz.image, sz.image, device=device)
            try:
                make_step(name, model, video, cfg, device, prec)[1]()
                _sync(device)
                best = batch
            except torch.OutOfMemoryError:
                break
            finally:
                del video
                model.zero_grad(set_to_none=True)
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
            batch *= 2
        found[name] = {"max_batch": best, "capped": best * 2 > sz.max_batch}
        models[name] = None
    return found


# ---- 4. the data path -------------------------------------------------------------------------------


def stage_data(sz: Sizes, step_rates: dict[str, float], workdir: Path) -> dict[str, Any]:
    """The pretraining data path at the VoxCeleb2 recipe, through ``benchmarks/loader.py``'s code (the run's
    own ``pretrain_dataset``): views per CPU-second of one worker with the augmentation in the worker and
    on the device, the device half's cost on this GPU, and a DataLoader with ``sz.data_workers`` workers
    (device augmentation, the GPU default); ``step_rates``: clips/s of each measured hi2m step row, which
    the workers must keep up with."""
    if str(Path(__file__).resolve().parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
    import loader as L  # benchmarks/loader.py, beside this file

    from hi2m.data.skipping import collate_skip_bad
    from hi2m.train.data import pretrain_dataset

    root = workdir / "voxceleb2"
    L.write_voxceleb2(root, sz.data_clips, sz.data_seconds)
    rates = {}
    for augment in ("worker", "device"):
        cfg = L.recipe_config(root, sz.data_repeats, augment, workdir / "cache")
        rates[augment] = L.worker_rate(cfg, max(sz.data_clips, 4))["views_per_cpu_s"]
    one = rates["device"]
    result = {"clips_per_s_one_worker": one, "cpu_s_per_clip": 1 / one, "views_per_cpu_s": rates,
              "repeats": sz.data_repeats, "workers": sz.data_workers,
              "clip": f"16 frames at stride 4 from 224x224 H.264, the 160x160 crop box, to 160x160, "
                      f"repeats {sz.data_repeats}"}
    if torch.cuda.is_available():
        result["device_ms_per_view_cuda"] = 1e3 * L.device_cost(cfg, "cuda")
    ds = pretrain_dataset(cfg, cfg.model_config())
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=max(len(ds), 8 * sz.data_workers),
                                             generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(ds, batch_size=1, sampler=sampler, num_workers=sz.data_workers,
                                         collate_fn=collate_skip_bad, persistent_workers=True)
    for _ in range(2):  # the second pass is the warm one (workers started, files in the page cache)
        t0 = time.perf_counter()
        seen = sum(batch["size"] * sz.data_repeats for batch in loader)
    result["clips_per_s_loader"] = seen / (time.perf_counter() - t0)
    result["workers_needed"] = {row: {"clips_per_s": rate, "workers": math.ceil(rate / one)}
                                for row, rate in step_rates.items()}
    return result


# ---- 5. the few-label question at GPU scale ------------------------------------------------------------


def stage_study(device: str, sz: Sizes, seconds: float, workdir: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Pretrain on the endless stream for ``seconds`` (a short calibration run sets the step count, so the
    learning-rate schedule runs to its end), then fine-tune at each budget from both initialisations."""
    import logging

    import lightning.pytorch as pl

    from hi2m.study import protocol as P

    for name in ("lightning.pytorch", "lightning.fabric"):  # this script prints its own progress lines
        logging.getLogger(name).setLevel(logging.WARNING)
    from hi2m.train.runner import finetune, pretrain

    workers = max(1, min(8, (os.cpu_count() or 2) - 2))
    model = dict(sz.study_model)
    recipe = P.Recipe(batch=sz.study_batch, pretrain_lr=sz.study_pretrain_lr, finetune_lr=sz.study_finetune_lr,
                      finetune_steps=sz.study_finetune_steps, model=model, frames=sz.study_frames, size=sz.study_size,
                      finetune_epoch=max(2048, 8 * sz.study_batch))
    accel = {"trainer": {"accelerator": "gpu" if device.startswith("cuda") else "cpu",
                         "precision": "bf16-mixed" if device.startswith("cuda") else "32-true"}}

    class Clock(pl.Callback):
        def __init__(self):
            self.marks: list[float] = []

        def on_train_batch_end(self, *args) -> None:
            self.marks.append(time.perf_counter())

    def run_pretrain(steps: int, name: str):
        cfg = P.pretrain_config(P.HI2M_VARIANT, 0, replace(recipe, pretrain_steps=steps), workdir, name, workers)
        clock = Clock()
        t0 = time.perf_counter()
        run = pretrain(cfg.replace(**accel), extra_callbacks=[clock])
        return run, clock.marks, time.perf_counter() - t0

    calib = sz.study_calibration_steps
    _, marks, wall = run_pretrain(calib, "calibrate")
    skip = calib // 3  # the first steps pay for start-up (workers, allocator, kernels)
    per_step = (marks[-1] - marks[skip - 1]) / (len(marks) - skip)
    startup = max(0.0, wall - per_step * calib)
    steps = max(sz.study_min_steps, int((seconds - startup) / per_step))
    say(f"study: {per_step * 1000:.0f} ms per pretraining step, start-up {startup:.0f} s -> {steps} steps "
        f"in {seconds:.0f} s")
    run, _, wall = run_pretrain(steps, "pretrain")
    result: dict[str, Any] = {"pretrain": {"steps": steps, "clips": steps * recipe.batch, "seconds": wall,
                                           "s_per_step": per_step, "model": model,
                                           "geometry": f"{recipe.frames}x{recipe.size}x{recipe.size}"},
                              "cpu_study": CPU_STUDY, "finetune": {}}
    budgets = sorted(sz.study_budgets, reverse=True)
    pool = budgets[0] * P.NUM_CLASSES
    for b in budgets:
        fsteps = recipe.finetune_steps if b == budgets[0] else sz.study_few_steps
        for label, init, slug in (("HI2M", run["model_dir"], "pretrained"), ("random init", None, "random-init")):
            cfg = P.finetune_config(init, b, 0, replace(recipe, finetune_steps=fsteps), workdir,
                                    f"finetune-{slug}-{b}", pool, sz.study_test)
            ft = finetune(cfg.replace(**accel), verbose=False)
            m = P.metrics_of(ft["run_dir"])
            result["finetune"].setdefault(str(b), {})[label] = {"uar": m["uar"], "war": m["war"], "steps": fsteps}
            say(f"study: {b}/class, {label}: UAR {m['uar']:.1f}")
    for b, rows in result["finetune"].items():
        rows["gain"] = rows["HI2M"]["uar"] - rows["random init"]["uar"]
    return result


# ---- the plan and the table --------------------------------------------------------------------------


def plan(sz: Sizes, budget_s: float, smoke: bool, device: str) -> tuple[list[tuple[str, Any]], list[str], float]:
    """Items to run (stage by stage), the items skipped for the budget, and the study's seconds. Items are
    taken in order of importance while they fit; the study reserves ``STUDY_MIN`` at its place in that
    order and gets whatever the budget leaves at the end."""
    col = 1 if smoke else 0
    first, *rest = sz.sizes
    wanted: list[tuple[str, Any]] = [("env", None), ("correctness", None)]
    wanted += [("step-eager", (s, "bf16")) for s in sz.sizes] + [("data", None), ("study", None)]
    wanted += [("step-compiled", (first, "bf16"))] + [("step-fp32", (s, "fp32")) for s in sz.sizes]
    if device.startswith("cuda") or smoke:
        wanted += [("max-batch", (s, "bf16")) for s in sz.sizes]
    wanted += [("step-compiled", (s, "bf16")) for s in rest]
    chosen, skipped, spent = [], [], 0.0
    for kind, arg in wanted:
        cost = STUDY_MIN[col] if kind == "study" else ITEM_COST[kind][col]
        if spent + cost <= budget_s or kind == "env":
            chosen.append((kind, arg))
            spent += cost
        else:
            skipped.append(f"{kind} {'/'.join(arg) if arg else ''}".strip())
    study_s = budget_s - spent + STUDY_MIN[col]
    order = {"env": 0, "correctness": 1, "step-eager": 2, "step-fp32": 2, "step-compiled": 2, "max-batch": 3,
             "data": 4, "study": 5}
    chosen.sort(key=lambda item: order[item[0]])  # stage by stage; the data stage needs the step rates
    return chosen, skipped, study_s


def markdown(data: dict[str, Any]) -> str:
    """The results as markdown tables, ready for benchmarks/RESULTS.md."""
    meta, st = data["meta"], data["stages"]
    env = st.get("env", {})
    lines = [f"### gpu_check: {env.get('name', meta.get('device'))} ({meta['mode']}, {meta['date']})", "",
             f"torch {env.get('torch')}, CUDA {env.get('cuda', '-')}, bf16 peak {env.get('bf16_peak_tflops')} TFLOP/s "
             f"({env.get('bf16_peak_source')}); skipped for the budget: {', '.join(data['plan'].get('skipped', [])) or 'none'}",
             ""]
    corr = st.get("correctness")
    if corr:
        lines += ["| check | rel. error | tolerance | pass |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['rel_err']:.2e} | {v['tol']:g} | {'yes' if v['pass'] else '**no**'} |"
                  for k, v in corr.items() if isinstance(v, dict) and "rel_err" in v]
        lines.append("")
    rows = st.get("step", {})
    if rows:
        lines += [f"Pretraining step, batch {meta['batch']}, {meta['input']} (median of {meta['steps']} steps):", "",
                  "| size | precision | mode | model | step s | clips/s | memory MB | MFU | time vs tf | memory vs tf |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for key, row in rows.items():
            if "transformers" not in row:
                lines.append(f"| {key} | failed: {row.get('error')} |||||||||")
                continue
            size, prec, mode = key.split("/")
            for name in PEERS:
                r = row[name]
                mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
                mem = f"{r['memory_mb']:.0f}" if r["memory_mb"] else "-"
                mem_ratio = f"{r['memory_vs_transformers']:.2f}x" if r["memory_vs_transformers"] else "-"
                lines.append(f"| {size} | {prec} | {mode} | {name} | {r['step_s']:.4f} | {r['clips_per_s']:.1f} | "
                             f"{mem} | {mfu} | {r['time_vs_transformers']:.2f}x | {mem_ratio} |")
        lines.append("")
    mb = st.get("max_batch", {})
    if mb:
        lines += ["| largest batch (bf16) | " + " | ".join(PEERS) + " |", "|---" * (len(PEERS) + 1) + "|"]
        for key, row in mb.items():
            if "error" in row:
                lines.append(f"| {key} | failed: {row['error']} |||")
                continue
            lines.append(f"| {key} | " + " | ".join(
                f"{row[p]['max_batch']}{'+' if row[p]['capped'] else ''}" for p in PEERS) + " |")
        lines.append("")
    d = st.get("data")
    if d and "error" not in d:
        needed = "; ".join(f"{k}: {v['workers']} (at {v['clips_per_s']:.0f} clips/s)"
                           for k, v in d.get("workers_needed", {}).items())
        per = d.get("views_per_cpu_s", {})
        split = (f" (augmentation in the worker: {per['worker']:.1f}, on the device: {per['device']:.1f} views/CPU-s"
                 + (f"; the device half {d['device_ms_per_view_cuda']:.3f} ms per view on this GPU"
                    if "device_ms_per_view_cuda" in d else "") + ")") if per else ""
        lines += [f"Data path ({d['clip']}): {d['clips_per_s_one_worker']:.1f} clips/s per worker{split}, "
                  f"{d['clips_per_s_loader']:.1f} clips/s with {d['workers']} workers. "
                  f"Decode workers one GPU needs for the full method's step: {needed or '-'}", ""]
    s = st.get("study")
    if s and "finetune" in s:
        p = s["pretrain"]
        lines += [f"Few-label study: {p['model']['size']} encoder at {p['geometry']}, {p['steps']} pretraining steps "
                  f"({p['clips']} clips, {p['seconds']:.0f} s), one seed; CPU study: {CPU_STUDY['geometry']}", "",
                  "| clips/class | HI2M UAR | random UAR | gain | CPU study HI2M | CPU random | CPU gain |",
                  "|---|---|---|---|---|---|---|"]
        for b, rows in s["finetune"].items():
            cpu = CPU_STUDY["uar"].get(b, {})
            cpu_gain = f"{cpu['HI2M'] - cpu['random init']:+.1f}" if cpu else "-"
            lines.append(f"| {b} | {rows['HI2M']['uar']:.1f} | {rows['random init']['uar']:.1f} | {rows['gain']:+.1f} | "
                         f"{cpu.get('HI2M', '-')} | {cpu.get('random init', '-')} | {cpu_gain} |")
        lines.append("")
    errors = {k: v for k, v in st.items() if isinstance(v, dict) and "error" in v}
    for k, v in errors.items():
        lines.append(f"- stage {k} failed: {v['error']}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--smoke", action="store_true", help="every stage at tiny sizes (a CPU in CI: under 2 minutes)")
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="the whole run fits in this (default 8)")
    ap.add_argument("--study-minutes", type=float, default=None,
                    help="pretraining wall clock of the study (default: what the budget leaves, minus fine-tuning)")
    ap.add_argument("--out", default="runs/gpu-check", help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--plan-only", action="store_true", help="print the plan and stop")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device (use --device cpu --smoke on a CPU)")
    sz = SMOKE if args.smoke else FULL
    out = Path(args.out).absolute()
    budget_s = 60 * args.budget_minutes
    items, skipped, study_s = plan(sz, budget_s, args.smoke, args.device)
    if args.study_minutes is not None:
        study_s = 60 * args.study_minutes
    study_pretrain_s = max(60.0, study_s * 0.55)  # fine-tuning, rendering and start-ups take the rest
    print(f"gpu_check: device {args.device}, {'smoke' if args.smoke else 'full'} sizes, budget {args.budget_minutes:g} min"
          f" -> {out}")
    print("  will run: " + ", ".join(f"{k}{' ' + '/'.join(a) if a else ''}" for k, a in items))
    print("  will skip (budget): " + (", ".join(skipped) or "nothing"))
    study_pretrain_s = min(study_pretrain_s, sz.study_pretrain_cap_s)
    if any(k == "study" for k, _ in items):
        print(f"  study: about {study_s / 60:.1f} min, of which pretraining {study_pretrain_s / 60:.1f} min")
    if args.plan_only:
        return 0
    meta = {"device": args.device, "mode": "smoke" if args.smoke else "full", "date": time.strftime("%Y-%m-%d"),
            "budget_minutes": args.budget_minutes, "batch": sz.batch, "input": f"{sz.frames}x{sz.image}x{sz.image}",
            "steps": sz.steps, "sizes": dict(sz.__dict__)}
    rec = Record(out, meta)
    rec.data["plan"] = {"run": [f"{k} {'/'.join(a) if a else ''}".strip() for k, a in items], "skipped": skipped,
                        "study_seconds": study_s}
    clock = Clock(budget_s)
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    peak = None
    step_rates: dict[str, float] = {}  # clips/s of the full method per step row, for the data stage
    failed = 0
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for kind, arg in items:
            cost = ITEM_COST.get(kind, STUDY_MIN)[1 if args.smoke else 0]
            if kind != "env" and clock.left() < (STUDY_MIN[1 if args.smoke else 0] if kind == "study" else cost):
                rec.data["plan"]["skipped"].append(f"{kind} (budget spent at run time)")
                say(f"skip {kind}: {clock.left():.0f} s left")
                rec.flush()
                continue
            label = f"{kind}{' ' + '/'.join(arg) if arg else ''}"
            say(f"{label} ...")
            try:
                if kind == "env":
                    rec.put("env", None, stage_env(args.device))
                    peak = rec.data["stages"]["env"]["bf16_peak_flops"]
                elif kind == "correctness":
                    rec.put("correctness", None, stage_correctness(args.device, sz))
                elif kind.startswith("step"):
                    size, prec = arg
                    mode = "compiled" if kind == "step-compiled" else "eager"
                    eager = rec.data["stages"].get("step", {}).get(f"{size}/{prec}/eager")
                    row = step_row(size, prec, mode == "compiled", args.device, sz, peak, eager)
                    rec.put("step", f"{size}/{prec}/{mode}", row)
                    step_rates[f"{size} {prec} {mode}"] = row["hi2m"]["clips_per_s"]
                elif kind == "max-batch":
                    rec.put("max_batch", f"{arg[0]}/{arg[1]}", max_batch(arg[0], arg[1], args.device, sz))
                elif kind == "data":
                    rec.put("data", None, stage_data(sz, step_rates, Path(tmp)))
                elif kind == "study":
                    pre_s = study_pretrain_s if clock.left() > study_s else max(30.0, 0.55 * clock.left())
                    pre_s = min(pre_s, sz.study_pretrain_cap_s)
                    rec.put("study", None, stage_study(args.device, sz, pre_s, Path(tmp) / "study", say))
            except Exception as exc:  # a failed stage is recorded and the run goes on to the next
                failed += 1
                key = "step" if kind.startswith("step") else kind.replace("-", "_")
                error = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
                if arg:
                    mode = {"step-compiled": "/compiled", "step-eager": "/eager", "step-fp32": "/eager"}.get(kind, "")
                    rec.put(key, "/".join(arg) + mode, error)
                else:
                    rec.put(key, None, error)
                say(f"{label} FAILED: {type(exc).__name__}: {exc}")
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    rec.data["meta"]["seconds"] = time.perf_counter() - t_start
    rec.flush()
    print()
    print((out / "gpu_check.md").read_text())
    say(f"done: {out / 'gpu_check.json'}; {failed} stage(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
