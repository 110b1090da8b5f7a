"""Figures from a run's own data (matplotlib, imported lazily)."""
