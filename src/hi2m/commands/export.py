"""``hi2m export``: a fine-tuned classifier to ONNX (``--onnx``), or any hi2m model to a transformers
directory (``--hf``), each checked against PyTorch.

Exit codes: 0 exported and matching PyTorch within --tolerance; 1 exported but the check failed;
2 usage error (model directory, wrong kind of model, missing onnx / onnxruntime / transformers).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--onnx", metavar="MODEL_DIR", help="fine-tuned model directory to export to ONNX")
    what.add_argument("--hf", metavar="RUN_OR_MODEL",
                      help="a run directory or model directory to export as a transformers VideoMAE folder "
                           "(classifier: VideoMAEForVideoClassification; pretrained: VideoMAEForPreTraining)")
    parser.add_argument("--out", required=True, help="output .onnx file (--onnx) or folder (--hf)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="max abs difference allowed (default 1e-4 for ONNX, 1e-5 for transformers)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def model_dir(path: str) -> Path:
    """A model directory, or a run directory's ``model/``."""
    p = Path(path)
    return p / "model" if (p / "model" / "config.json").is_file() else p


def run(args: argparse.Namespace) -> int:
    return run_hf(args) if args.hf else run_onnx(args)


def run_hf(args: argparse.Namespace) -> int:
    from hi2m.io.weights import load_pretrained

    try:
        import transformers  # noqa: F401
    except ImportError:
        print("hi2m export: error: transformers is not installed (pip install 'hi2m[parity]')", file=sys.stderr)
        return 2
    from hi2m.io.hf import export_transformers
    from hi2m.io.card import write_model_card

    src = model_dir(args.hf)
    try:
        model = load_pretrained(src)
        report = export_transformers(model, args.out, check=not args.no_check)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"hi2m export: error: {err}", file=sys.stderr)
        return 2
    import json

    selected = json.loads((src / "config.json").read_text()).get("metadata", {}).get("selected")
    run_dir = src.parent if (src.parent / "config.yaml").is_file() else None
    write_model_card(args.out, model, run_dir, selected=selected, library="transformers",
                     architecture=report.architecture)
    print(f"wrote {report.directory} ({report.architecture}, with README.md model card)")
    for item in report.dropped:
        print(f"  not carried over / note: {item}")
    if args.no_check:
        return 0
    tolerance = 1e-5 if args.tolerance is None else args.tolerance
    print(f"transformers vs hi2m on random clips: max abs diff {report.max_abs_diff:.3g}")
    if not report.max_abs_diff <= tolerance:
        print(f"hi2m export: check FAILED: difference above --tolerance {tolerance}", file=sys.stderr)
        return 1
    return 0


def run_onnx(args: argparse.Namespace) -> int:
    from hi2m.io.onnx import export_onnx
    from hi2m.io.weights import load_pretrained

    try:
        import onnx  # noqa: F401

        if not args.no_check:
            import onnxruntime  # noqa: F401
    except ImportError as err:
        print(f"hi2m export: error: {err.name} is not installed (pip install onnx onnxruntime)", file=sys.stderr)
        return 2
    try:
        model = load_pretrained(args.onnx)
        report = export_onnx(model, args.out, opset=args.opset, check=not args.no_check)
    except (ValueError, TypeError, FileNotFoundError, OSError) as err:
        print(f"hi2m export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {report.path} (opset {report.opset})")
    if args.no_check:
        return 0
    tolerance = 1e-4 if args.tolerance is None else args.tolerance
    print(f"onnxruntime vs PyTorch on a batch of {report.batch_checked}: max abs diff "
          f"logits {report.max_abs_diff_logits:.3g}, features {report.max_abs_diff_features:.3g}")
    if not report.max_abs_diff <= tolerance:
        print(f"hi2m export: check FAILED: difference above --tolerance {tolerance}", file=sys.stderr)
        return 1
    return 0
