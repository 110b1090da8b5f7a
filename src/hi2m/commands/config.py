"""``hi2m config show -c FILE [KEY=VALUE...]``: the resolved run configuration, each field with its doc."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    show = sub.add_parser("show", help="print the resolved configuration with each field's doc",
                          description="Resolve defaults < config file < overrides exactly as a training command "
                                      "does, validate, and print the result with one line of doc per field.")
    show.add_argument("--config", "-c", help="YAML config (configs/... or a run's config.yaml)")
    show.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides")


def run(args: argparse.Namespace) -> int:
    import sys

    from hi2m.commands.train import config_error, load_args_config
    from hi2m.train.config import ConfigError, describe

    if getattr(args, "config_command", None) != "show":
        print("usage: hi2m config show [-c FILE] [KEY=VALUE ...]", file=sys.stderr)
        return 2
    try:
        cfg = load_args_config(args)
    except ConfigError as err:
        return config_error(args, err)
    print(describe(cfg))
    return 0
