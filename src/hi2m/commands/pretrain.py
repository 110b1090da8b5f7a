"""``hi2m pretrain``: see hi2m.commands.train."""

from hi2m.commands.train import add_pretrain_arguments as add_arguments  # noqa: F401
from hi2m.commands.train import run_pretrain as run  # noqa: F401
