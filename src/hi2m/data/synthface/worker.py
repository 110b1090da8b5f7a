"""Worker process of :func:`write_synthface`: reads a JSON job on stdin, writes its
clips, and prints one JSON meta row per clip on stdout.

Run as ``python -m hi2m.data.synthface.worker``; not meant to be used by hand.
"""

from __future__ import annotations

import json
import sys

from hi2m.data.synthface.storage import run_job


def main() -> int:
    job = json.load(sys.stdin)
    for row in run_job(job):
        sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
