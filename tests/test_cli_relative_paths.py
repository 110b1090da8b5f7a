"""Every command through the installed ``hi2m`` entry point, run as a user runs it: from a fresh empty
current directory, with the default (relative) paths.

The README's main command once crashed on a relative ``--out`` (the SynthFace list file was joined to
the relative root twice) while every test passed, because every test used absolute temporary paths.
These tests run in ``tmp_path`` as the current directory and never pass an absolute path of their own. The
first command of each chain runs through the installed entry point in a new process; the commands after it
run ``hi2m.cli:main`` (what the entry point calls) in this process from the same current directory
(``_cli.hi2m_here``: a subprocess each would add ~6 s of imports and check nothing more).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _cli import hi2m_here
from _media import astronaut_frames, write_video

HI2M = shutil.which("hi2m", path=str(Path(sys.executable).parent)) or shutil.which("hi2m")

pytestmark = pytest.mark.skipif(HI2M is None, reason="the hi2m entry point is not installed (pip install -e .)")

TINY = """\
# tiny SynthFace run; data.root and run.dir are relative to the current directory
seed: 0
model: {size: micro, mask_ratio: 0.75}
data:
  dataset: synthetic
  root: data/synthface
  options: {synthface: {num_train: 28, num_val: 14, num_test: 14, num_frames: 8, size: 32}}
  num_frames: 8
  stride: 1
  image_size: 32
  batch_size: 4
  num_workers: 0
  val_split: val
  temporal_views: 1
  spatial_views: 1
optim: {epochs: 1, warmup_epochs: 0, base_lr: 1e-3, lr_scaling: none}
trainer: {accelerator: cpu, devices: 1, log_every_n_steps: 1, enable_progress_bar: false}
"""


def hi2m(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="2")
    proc = subprocess.run([HI2M, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"hi2m {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def here(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = hi2m_here(cwd, *args)
    assert proc.returncode == 0, f"hi2m {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_demo_with_its_default_relative_out_leaves_runs_that_every_command_accepts(tmp_path):
    """The README's first command at its tiny scale: ``hi2m demo`` writes under ./runs/demo, and each of its
    stages is an ordinary run directory that ``evaluate`` and ``visualize`` take."""
    proc = hi2m(tmp_path, "demo", "--scale", "tiny", "--workers", "0")
    out = tmp_path / "runs" / "demo"
    results = json.loads((out / "demo.json").read_text())
    assert "chance" in proc.stdout and (out / "demo_report.txt").is_file()
    runs = [Path("runs/demo") / f"finetune-{init}-{b}" for b in (3, 1) for init in ("pretrained", "random-init")]
    for b in ("3", "1"):
        assert all(0.0 <= results["finetune"][b][k]["uar"] <= 100.0 for k in ("HI2M", "random init"))
    for run in runs[::3]:  # a pretrained-init and a random-init stage evaluate again to the numbers they reported
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        again = here(tmp_path, "evaluate", "-c", str(run / "config.yaml"), "--model", str(run / "model"),
                     f"run.name=eval-{run.name}")
        again_metrics = json.loads((tmp_path / "runs" / "demo" / f"eval-{run.name}" / "metrics.json").read_text())
        assert again_metrics["confusion"] == metrics["confusion"], again.stdout
    figures = here(tmp_path, "visualize", str(runs[0])).stdout  # the same kind of run directory each
    assert "confusion.png" in figures and "tsne.png" in figures
    pre = Path("runs/demo/pretrain")
    assert (tmp_path / pre / "config.yaml").is_file() and (tmp_path / pre / "model" / "README.md").is_file()
    figures = here(tmp_path, "visualize", str(pre)).stdout
    assert "hrd_00.png" in figures and "hsm.png" in figures
    # export --hf and --resume take them like any engine run's (the next test exports one; test_interruption
    # resumes them)


def test_every_command_from_a_fresh_directory_with_relative_paths(tmp_path):
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "base.yaml").write_text(TINY)
    (cfg_dir / "child.yaml").write_text("base: base.yaml\nrun: {name: pre}\n")  # a base: chain, relative

    hi2m(tmp_path, "pretrain", "-c", "cfg/child.yaml")
    assert (tmp_path / "data" / "synthface" / "train.csv").is_file()
    assert (tmp_path / "runs" / "pre" / "model" / "config.json").is_file()

    here(tmp_path, "finetune", "-c", "cfg/base.yaml", "run.name=ft", "finetune.pretrained=runs/pre/model",
         "finetune.mixup=0", "finetune.cutmix=0", "finetune.rand_augment=null")
    assert json.loads((tmp_path / "runs" / "ft" / "metrics.json").read_text())["total"] == 14
    saved = (tmp_path / "runs" / "ft" / "config.yaml").read_text()
    assert str(tmp_path / "data" / "synthface") in saved  # saved absolute: resumable from anywhere

    here(tmp_path, "evaluate", "-c", "cfg/base.yaml", "run.name=ev", "--model", "runs/ft/model")
    assert (tmp_path / "runs" / "ev" / "metrics.json").is_file()

    # the runs are usable from another current directory too: resume-style config reuse and visualize
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    here(elsewhere, "visualize", "../runs/pre", "--num-clips", "2")
    assert any((tmp_path / "runs" / "pre" / "figures").glob("*.png"))
    here(elsewhere, "evaluate", "-c", "../runs/ft/config.yaml", "run.name=ev2", "--model", "../runs/ft/model")
    assert (tmp_path / "runs" / "ev2" / "metrics.json").is_file()  # run.dir saved absolute

    write_video(tmp_path / "face.mp4", astronaut_frames(24), fps=12)
    proc = here(tmp_path, "predict", "face.mp4", "--model", "runs/ft/model", "--out", "preds/face.json")
    result = json.loads((tmp_path / "preds" / "face.json").read_text())
    assert proc.returncode == 0 and result

    here(tmp_path, "export", "--onnx", "runs/ft/model", "--out", "exported/model.onnx")
    assert (tmp_path / "exported" / "model.onnx").stat().st_size > 0

    # the run's model card, and the transformers export with its own card, both filled from the run
    uar = json.loads((tmp_path / "runs" / "ft" / "metrics.json").read_text())["uar"]
    card = (tmp_path / "runs" / "ft" / "model" / "README.md").read_text()
    assert f"| {100 * uar:.2f} |" in card and "model selection" in card.lower()
    assert "## Intended use and limits" in (tmp_path / "runs" / "pre" / "model" / "README.md").read_text()
    proc = here(tmp_path, "export", "--hf", "runs/ft", "--out", "exported/hf")
    assert "VideoMAEForVideoClassification" in proc.stdout and "max abs diff" in proc.stdout
    hf_card = (tmp_path / "exported" / "hf" / "README.md").read_text()
    assert "library_name: transformers" in hf_card and f"| {100 * uar:.2f} |" in hf_card
    assert (tmp_path / "exported" / "hf" / "model.safetensors").is_file()
