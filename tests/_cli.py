"""``hi2m`` run in this process exactly as its console script runs it (``hi2m.cli:main``), from a given current
directory and with extra environment variables: the exit code and what it printed, as ``subprocess.run``
returns them.

Each ``hi2m`` subprocess spends 5-7 s of a 2-core machine importing torch and Lightning (Lightning alone imports
torchmetrics, and through it transformers, scipy.signal and matplotlib, 3.4 s, to read a version number).
A test that runs a chain of commands runs the first through the installed entry point and the rest with
this; what the chain checks (relative paths, the files each command leaves for the next) is the same.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path


def hi2m_here(cwd: Path | str, *args: str, env: dict[str, str] | None = None,
              threads: int | None = None) -> subprocess.CompletedProcess:
    """``threads``: torch's intra-op threads for the run (what ``OMP_NUM_THREADS`` sets in a subprocess; a run
    compared bit for bit with a subprocess's needs the same count), restored after. The ``hi2m`` logger's
    INFO lines go to the returned stderr, as the command's ``logging.basicConfig`` sends them in a process of
    its own (here the test runner's handlers already own the root logger)."""
    import logging

    import torch

    from hi2m.cli import main

    out, err = io.StringIO(), io.StringIO()
    logger, handler = logging.getLogger("hi2m"), logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    saved_env, saved_cwd, saved_threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    try:
        os.environ.update(env or {})
        os.chdir(cwd)
        if threads:
            torch.set_num_threads(threads)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        torch.set_num_threads(saved_threads)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["hi2m", *args], code, out.getvalue(), err.getvalue())
