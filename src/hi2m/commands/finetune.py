"""``hi2m finetune``: see hi2m.commands.train."""

from hi2m.commands.train import add_finetune_arguments as add_arguments  # noqa: F401
from hi2m.commands.train import run_finetune as run  # noqa: F401
