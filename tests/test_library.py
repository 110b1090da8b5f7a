"""hi2m as a library: the Python API, runs that leave the process as they found it, many runs in one process,
SIGINT -> checkpoint -> Interrupted -> ``resume=``, and the quickstart notebook in a real Jupyter kernel."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import hi2m
from hi2m.cli import main
from hi2m.process import ProcessState
from hi2m.train import runner  # noqa: F401 - imported before any snapshot: import-time loggers exist
from hi2m.train.checkpointing import Aborted, StepCheckpoint
from test_interruption import assert_same_run, run_here, step_losses, write_cfg

SYNTH = {"num_train": 28, "num_val": 7, "num_test": 7, "num_frames": 8, "size": 32}
HI2M_BIN = os.path.join(os.path.dirname(sys.executable), "hi2m")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PL_DISABLE_FORK="1")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from hi2m.data.synthface import ensure_synthface

    root = tmp_path_factory.mktemp("synthface")
    ensure_synthface(root, **SYNTH)
    return root


def tiny(root: Path, run_dir: Path, workers: int = 0) -> dict:
    """Sections of a tiny run (7 steps per epoch), as a notebook user would write them."""
    return {
        "model": {"size": "micro", "mask_ratio": 0.75},
        "data": {"dataset": "synthetic", "root": str(root), "options": {"synthface": SYNTH}, "num_frames": 8,
                 "stride": 1, "image_size": 32, "batch_size": 4, "num_workers": workers, "temporal_views": 1,
                 "spatial_views": 1},
        "optim": {"epochs": 1, "warmup_epochs": 1, "base_lr": 1e-3, "lr_scaling": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False},
        "finetune": {"select": "last"},
        "run": {"dir": str(run_dir)},
    }


def _custom_state():
    """Settings a caller may have changed before calling hi2m, so that 'restored' means 'to these', not to
    Python's defaults: handlers of its own, one thread, a logger and a warnings filter of its own."""

    def on_term(signum, frame):  # pragma: no cover - never called
        pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    torch.set_num_threads(1)
    logging.getLogger("hi2m").addHandler(logging.NullHandler())
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="a filter of the caller's")
    os.environ["HI2M_CALLER_SETTING"] = "1"
    torch.manual_seed(1234)


@pytest.fixture
def caller_state():
    saved = ProcessState.capture()
    _custom_state()
    yield
    saved.restore()


def assert_unchanged(before: ProcessState, what: str) -> None:
    diff = before.differences(ProcessState.capture())
    assert not diff, f"{what} changed the process: " + "; ".join(diff)


def test_the_api_and_the_cli_leave_the_process_as_they_found_it(synth_root, tmp_path, caller_state, monkeypatch):
    import cv2  # noqa: F401 - imported before the snapshot: importing OpenCV sets LD_LIBRARY_PATH (an import, not a run)

    monkeypatch.chdir(tmp_path)
    before = ProcessState.capture()
    assert before.signals[signal.SIGTERM] not in (signal.SIG_DFL, signal.SIG_IGN)  # the caller's own handler
    cfg = tiny(synth_root, tmp_path / "runs", workers=1)
    pre = hi2m.pretrain(cfg, run={"name": "pre"})
    assert_unchanged(before, "hi2m.pretrain")
    ft = hi2m.finetune(cfg, "run.name=ft", finetune={"pretrained": pre.model_dir}, verbose=False)
    assert_unchanged(before, "hi2m.finetune")
    ev = hi2m.evaluate(ft, run={"name": "ev"})
    assert_unchanged(before, "hi2m.evaluate")
    assert ev.metrics["confusion"] == ft.metrics["confusion"]  # the same model on the same test split
    clip = sorted((synth_root / "videos" / "test").rglob("*.mp4"))[0]
    result = ft.load(detector=WholeFrame(), stride=1).predict(clip)
    assert_unchanged(before, "Predictor.predict")
    assert result.status == "ok" and result.summary["dominant"] in ft.load().class_names
    # the command line called in-process: a training command, predict, and the demo's stages
    config = tmp_path / "pre.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "-c", str(config), "run.name=cli"]) == 0
    assert_unchanged(before, "hi2m pretrain (main)")
    code = main(["predict", str(clip), "--model", str(ft.model_dir), "--detector", "haar", "--quiet",
                 "--out", str(tmp_path / "p.json")])
    assert code == 1 and json.loads((tmp_path / "p.json").read_text())["videos"][0]["status"] == "no_face"  # 32 px
    assert_unchanged(before, "hi2m predict (main)")
    assert main(["demo", "--scale", "tiny", "--out", "demo", "--workers", "0"]) == 0
    assert_unchanged(before, "hi2m demo (main)")
    assert (tmp_path / "demo" / "demo.json").is_file()


class WholeFrame:
    """A detector for clips that are face crops already."""

    def detect(self, rgb):
        from hi2m.infer import Box

        return [Box(0, 0, rgb.shape[1], rgb.shape[0])]


def test_the_engine_gives_the_signals_back_and_a_fork_pool_after_it_never_hangs(synth_root, tmp_path):
    """The leak behind a 15-minute hang of the suite: after an in-process run, Lightning's SIGTERM handler
    (which swallows the signal) stayed installed; a forked Pool worker inherited it and Pool.__exit__'s
    SIGTERM never stopped it. The engine itself, without the API's process guard, now gives every handler
    back; then 50 fork pools of 2 workers, each stopped by SIGTERM, all end."""
    from hi2m.train.config import load_config

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    runner.pretrain.__wrapped__(load_config(tiny(synth_root, tmp_path, workers=0)))  # no process guard
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    fork = multiprocessing.get_context("fork")
    for _ in range(50):
        with fork.Pool(2) as pool:  # __exit__: terminate() -> SIGTERM to both workers, then join
            assert pool.map(abs, range(-4, 4)) == [4, 3, 2, 1, 0, 1, 2, 3]


def _resources() -> tuple[int, int]:
    return len(os.listdir("/proc/self/fd")), threading.active_count()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_many_runs_in_one_process_equal_separate_processes(synth_root, tmp_path):
    from safetensors.torch import load_file

    cfg = tiny(synth_root, tmp_path / "runs")
    a = hi2m.pretrain(cfg, run={"name": "a"})
    after_a = _resources()
    hi2m.pretrain(cfg, run={"name": "b"})
    after_b = _resources()
    ft = hi2m.finetune(cfg, run={"name": "ft"}, finetune={"pretrained": a.model_dir}, verbose=False)
    # the same runs, each in a process of its own
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    for args in (["pretrain", "run.name=sep"], ["finetune", "run.name=sep-ft", f"finetune.pretrained={a.model_dir}"]):
        env = dict(ENV, OMP_NUM_THREADS=str(torch.get_num_threads()))  # the same reduction order as here
        done = subprocess.run([HI2M_BIN, args[0], "-c", str(tmp_path / "cfg.yaml"), *args[1:]], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    weights = {name: load_file(str(tmp_path / "runs" / name / "model" / "model.safetensors"))
               for name in ("a", "b", "sep", "ft", "sep-ft")}
    for same in (("a", "b"), ("a", "sep"), ("ft", "sep-ft")):
        x, y = (weights[n] for n in same)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), same
    assert step_losses(a.dir) == step_losses(tmp_path / "runs" / "sep")
    sep = json.loads((tmp_path / "runs" / "sep-ft" / "metrics.json").read_text())
    assert ft.metrics["confusion"] == sep["confusion"]
    assert after_b[0] <= after_a[0], f"open files grew between runs: {after_a[0]} -> {after_b[0]}"
    assert after_b[1] <= after_a[1], f"threads grew between runs: {after_a[1]} -> {after_b[1]}"


def test_a_second_sigint_stops_at_once_without_a_checkpoint(tmp_path):
    cb = StepCheckpoint(tmp_path / "checkpoints")
    cb._handler(signal.SIGINT, None)  # the first: recorded, the step goes on
    assert cb.received == signal.SIGINT
    with pytest.raises(Aborted, match="second SIGINT"):
        cb._handler(signal.SIGINT, None)


INTERRUPTED_SCRIPT = """
import json, sys
import hi2m
cfg = sys.argv[1]
try:
    hi2m.pretrain(cfg)
    print("NOT INTERRUPTED", flush=True)
except hi2m.Interrupted as err:
    assert isinstance(err, KeyboardInterrupt)
    print("INTERRUPTED " + json.dumps({"message": str(err), "checkpoint": str(err.checkpoint),
                                       "dir": str(err.run.dir), "status": err.run.status}), flush=True)
    run = hi2m.pretrain(cfg, resume=err.run)
    print("RESUMED " + str(run.dir), flush=True)
"""


def test_sigint_to_the_process_group_checkpoints_returns_control_and_resume_continues_exactly(synth_root, tmp_path):
    """What a notebook's interrupt does (jupyter_client signals the kernel's process group, DataLoader workers
    included): the step finishes, a checkpoint is written, ``hi2m.Interrupted`` reaches the caller, and
    ``resume=`` in the same process gives the uninterrupted run's losses and weights."""
    sections = {"data": {"num_workers": 1}, "trainer": {"checkpoint_every_n_steps": 0}}
    full = write_cfg(synth_root, tmp_path, "full", **sections)
    run_here("pretrain", full)  # the uninterrupted run, in this process
    cut = write_cfg(synth_root, tmp_path, "cut", **sections)
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_SCRIPT, str(cut)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)
    deadline = time.monotonic() + 240
    losses: dict[int, float] = {}
    while not losses or max(losses) < 9:  # inside the second epoch
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:] if proc.poll() else ""
        time.sleep(0.01)
        losses = step_losses(tmp_path / "cut")
    os.killpg(proc.pid, signal.SIGINT)  # the kernel and its DataLoader worker, as jupyter_client does
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    line = next((x for x in out.splitlines() if x.startswith("INTERRUPTED ")), None)
    assert line is not None, out[-3000:]
    info = json.loads(line[len("INTERRUPTED "):])
    assert info["status"] == "interrupted" and info["dir"] == str(tmp_path / "cut")
    assert "SIGINT" in info["message"] and f"resume={str(tmp_path / 'cut')!r}" in info["message"]
    stopped_at = int(Path(info["checkpoint"]).stem.split("-")[1])
    assert 9 < stopped_at < 21, stopped_at
    assert f"RESUMED {tmp_path / 'cut'}" in out
    assert_same_run(tmp_path / "full", tmp_path / "cut", stopped_at)


def test_api_configuration_errors_are_the_cli_one_liners(tmp_path):
    with pytest.raises(hi2m.ConfigError, match=r"^optim.lerning_rate: unknown key \(did you mean base_lr\?\)$"):
        hi2m.pretrain(None, "optim.lerning_rate=1e-3")
    with pytest.raises(hi2m.ConfigError, match=r"^modle: unknown section \(did you mean model\?\)$"):
        hi2m.finetune(None, modle={"size": "micro"})
    with pytest.raises(hi2m.ConfigError, match="data.batch_size: .* >= 1"):
        hi2m.pretrain({"data": {"batch_size": 0}})
    with pytest.raises(hi2m.ConfigError, match="not a run directory"):
        hi2m.pretrain(resume=tmp_path)
    # strings, then section keywords, win over the source, key by key
    from hi2m.api import _config

    cfg = _config({"optim": {"epochs": 3, "base_lr": 0.5}}, ("optim.epochs=4",), {"optim": {"base_lr": 0.25}})
    assert (cfg.optim.epochs, cfg.optim.base_lr, cfg.optim.warmup_epochs) == (4, 0.25, cfg.optim.warmup_epochs)
    assert Path(cfg.run.dir).is_absolute()


def test_the_quickstart_notebook_runs_top_to_bottom_in_a_real_kernel(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbformat (pip install -e '.[dev]')")
    nbclient = pytest.importorskip("nbclient", reason="the notebook test needs nbclient (pip install -e '.[dev]')")
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel (pip install -e '.[dev]')")
    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "ConfigError: optim.lerning_rate: unknown key (did you mean base_lr?)" in text
    summary = json.loads(next(x for x in text.splitlines() if x.startswith('{"pretrain_steps"')))
    assert summary["pretrain_steps"] == 56  # 4 epochs of 112 clips in batches of 8
    assert summary["evaluate_uar"] == summary["finetune_uar"] and 0 <= summary["finetune_uar"] <= 1
    from hi2m.labels import DFER_CLASSES

    assert len(summary["predicted"]) == 4 and set(summary["predicted"]) <= set(DFER_CLASSES)
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure
    assert (tmp_path / "runs" / "quickstart-finetune" / "model" / "model.safetensors").is_file()
