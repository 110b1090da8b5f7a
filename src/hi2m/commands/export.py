"""``hi2m export --onnx MODEL_DIR --out model.onnx``: classifier to ONNX, checked with onnxruntime.

Exit codes: 0 exported and matching PyTorch within --tolerance; 1 exported but the check failed;
2 usage error (model directory, pretraining model, missing onnx / onnxruntime).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", required=True, metavar="MODEL_DIR", help="fine-tuned model directory to export")
    parser.add_argument("--out", required=True, help="output .onnx file")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")


def run(args: argparse.Namespace) -> int:
    from hi2m.export import export_onnx
    from hi2m.model.io import load_pretrained

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
    print(f"onnxruntime vs PyTorch on a batch of {report.batch_checked}: max abs diff "
          f"logits {report.max_abs_diff_logits:.3g}, features {report.max_abs_diff_features:.3g}")
    if not report.max_abs_diff <= args.tolerance:
        print(f"hi2m export: check FAILED: difference above --tolerance {args.tolerance}", file=sys.stderr)
        return 1
    return 0
