"""The ``hi2m`` command line.

Every subcommand module is imported only when that subcommand runs (or, for its
arguments, only the light ``add_arguments`` function), so ``hi2m --help`` does not
pay for torch, PyAV or Lightning.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int,
# and keeps heavy imports inside run().
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("hi2m.commands.demo", "the whole method on built-in SynthFace data, on a CPU, in minutes"),
    "pretrain": ("hi2m.commands.pretrain", "pretrain HI2M on unlabelled face videos"),
    "finetune": ("hi2m.commands.finetune", "fine-tune or linear-probe on labelled expression clips"),
    "evaluate": ("hi2m.commands.evaluate", "evaluate an exported classifier (UAR, WAR, confusion matrix)"),
    "info": ("hi2m.commands.info", "show model sizes, parameter counts and FLOPs"),
    "predict": ("hi2m.commands.predict", "predict expressions over time in videos (face tracking, sliding windows)"),
    "visualize": ("hi2m.commands.visualize", "figures of a run or model: HRD maps, HSM weights, confusion, t-SNE, losses"),
    "export": ("hi2m.commands.export", "export to ONNX (--onnx) or to a transformers folder (--hf), checked"),
    "data": ("hi2m.commands.data", "make a dataset from raw videos (hi2m data prepare), inspect one before a long run (hi2m data check)"),
    "config": ("hi2m.commands.config", "show the resolved run configuration with each field's doc"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hi2m",
        description="HI2M: self-supervised dynamic facial expression recognition "
        "(hard sample mining + hard region discovery).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def _version() -> str:
    from hi2m import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run one command; called in-process (tests, other programs), it leaves the process as it found it
    (:func:`hi2m.process.preserved`)."""
    from hi2m.process import preserved

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 0
    try:
        with preserved():
            return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:  # outside training (which checkpoints and stops by itself): stop quietly
        print(f"hi2m {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
