"""``hi2m data check``: placeholder until the data issue lands."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.add_parser("check", help="scan a dataset and report problems")


def run(args: argparse.Namespace) -> int:
    print("hi2m data check is not available yet")
    return 2
