"""ONNX export of a fine-tuned classifier (encoder + head), checked against PyTorch with onnxruntime.

The graph takes ``video`` (B, C, T, H, W) float32, normalised with the model's pixel mean / std (batch
size dynamic) and returns ``logits`` (B, K) and ``features`` (B, D), the pooled feature the head sees.
It is traced with the TorchScript exporter (``dynamo=False``): it needs no onnxscript, and it
lowers ``scaled_dot_product_attention`` to MatMul / Softmax (opset >= 14), so the attention needs no
special export path (checked by the tests through onnxruntime).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from hi2m.model.classifier import VideoClassifier

MIN_OPSET = 17


class _ExportWrapper(nn.Module):
    """video -> (logits, pooled features) as two graph outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, pooled = self.model.forward_features(video)  # (B, D)
        return self.model.head(pooled), pooled  # (B, K), (B, D)


@dataclass
class ExportReport:
    path: Path
    opset: int
    max_abs_diff_logits: float
    max_abs_diff_features: float
    batch_checked: int

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_logits, self.max_abs_diff_features)


def export_onnx(model: nn.Module, out: str | Path, opset: int = MIN_OPSET, check: bool = True,
                check_batch: int = 2, seed: int = 0) -> ExportReport:
    """Export ``model`` (a :class:`VideoClassifier`) to ``out``; with ``check``, run the file with
    onnxruntime on a random batch of ``check_batch`` clips (a batch size other than the traced one,
    to exercise the dynamic axis) and report the max abs difference to PyTorch."""
    if not isinstance(model, VideoClassifier):
        raise TypeError(f"ONNX export needs a fine-tuned VideoClassifier, got {type(model).__name__}")
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be >= {MIN_OPSET} (LayerNormalization), got {opset}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    wrapper = _ExportWrapper(model.eval().cpu()).eval()
    g = torch.Generator().manual_seed(seed)
    example = torch.randn(1, cfg.in_chans, cfg.num_frames, cfg.image_size, cfg.image_size, generator=g)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about shape checks, which are constant per model
        torch.onnx.export(
            wrapper, (example,), str(out), dynamo=False, opset_version=opset,
            input_names=["video"], output_names=["logits", "features"],
            dynamic_axes={"video": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}},
        )
    add_metadata(out, model)
    report = ExportReport(out, opset, float("nan"), float("nan"), 0)
    if check:
        video = torch.randn(check_batch, *example.shape[1:], generator=g)
        ref_logits, ref_feat = (t.numpy() for t in torch.no_grad()(wrapper)(video))
        logits, feat = run_onnx(out, video.numpy())
        report.max_abs_diff_logits = float(np.abs(logits - ref_logits).max())
        report.max_abs_diff_features = float(np.abs(feat - ref_feat).max())
        report.batch_checked = check_batch
    return report


def add_metadata(path: Path, model: VideoClassifier) -> None:
    """Write what a consumer needs beside the graph into the file's ``metadata_props``: ``id2label`` (JSON,
    the class names by logit index), the input geometry and the normalisation the input expects."""
    import json

    import onnx

    cfg = model.cfg
    graph = onnx.load(str(path))
    props = {"id2label": json.dumps({str(i): n for i, n in enumerate(model.class_names)}),
             "num_frames": str(cfg.num_frames), "image_size": str(cfg.image_size),
             "pixel_mean": json.dumps(list(cfg.pixel_mean)), "pixel_std": json.dumps(list(cfg.pixel_std)),
             "producer": "hi2m"}
    onnx.helper.set_model_props(graph, props)
    onnx.save(graph, str(path))


def run_onnx(path: str | Path, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of an exported model for a normalised float32 batch (B, C, T, H, W)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, feat = session.run(["logits", "features"], {"video": video.astype(np.float32)})
    return logits, feat


class OnnxRunner:
    """A classifier run through ONNX Runtime: exported once to a temporary file, then one session.

    ``threads``: ONNX Runtime's intra-op threads (default: torch's thread count, so both backends
    use the same cores). Call it with a normalised float32 batch (B, C, T, H, W); returns logits.
    """

    def __init__(self, model: nn.Module, threads: int | None = None) -> None:
        import tempfile

        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("the onnxruntime backend needs onnxruntime: pip install -e '.[export]'") from err
        with tempfile.TemporaryDirectory(prefix="hi2m-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            export_onnx(model, path, check=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or torch.get_num_threads()
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, video: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"video": np.ascontiguousarray(video, dtype=np.float32)})[0]
