"""``hi2m evaluate``: see hi2m.commands.train."""

from hi2m.commands.train import add_evaluate_arguments as add_arguments  # noqa: F401
from hi2m.commands.train import run_evaluate as run  # noqa: F401
