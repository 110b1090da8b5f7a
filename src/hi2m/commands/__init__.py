"""Light command modules behind ``hi2m <command>``."""
