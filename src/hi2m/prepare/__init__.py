"""``hi2m data prepare``: raw labelled videos -> face-tracked crops, manifests and a report
(see :mod:`hi2m.prepare.run`)."""

from hi2m.prepare.run import PrepareOptions, Summary, prepare
from hi2m.prepare.sources import Job, Problem, collect

__all__ = ["Job", "PrepareOptions", "Problem", "Summary", "collect", "prepare"]
