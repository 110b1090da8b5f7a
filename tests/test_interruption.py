"""Runs that survive interruption: step checkpoints, exact mid-epoch resume after SIGKILL (1 and 2 processes),
SIGTERM / SIGUSR1 -> checkpoint -> exit 75 -> --resume auto, torchrun, and the bad states around resuming."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from _cli import hi2m_here
from hi2m.train.config import DEFAULTS, deep_merge

SYNTH = {"num_train": 28, "num_val": 7, "num_test": 7, "num_frames": 8, "size": 32}
HI2M_BIN = os.path.join(os.path.dirname(sys.executable), "hi2m")
ENV = dict(os.environ, OMP_NUM_THREADS="1", PL_DISABLE_FORK="1")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from hi2m.data.synthface import ensure_synthface

    root = tmp_path_factory.mktemp("synthface")
    ensure_synthface(root, **SYNTH)
    return root


def write_cfg(root: Path, run_dir: Path, name: str, **sections) -> Path:
    """A tiny pretraining run, 7 steps per epoch; drop path on, so dropout's random stream matters too."""
    cfg = deep_merge(DEFAULTS, {
        "model": {"size": "micro", "mask_ratio": 0.75, "drop_path": 0.1},
        "data": {"dataset": "synthetic", "root": str(root), "options": {"synthface": SYNTH}, "num_frames": 8,
                 "stride": 1, "image_size": 32, "batch_size": 4, "num_workers": 0},
        "optim": {"epochs": 3, "warmup_epochs": 1, "base_lr": 1e-3, "lr_scaling": "none"},
        "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1, "enable_progress_bar": False,
                    "checkpoint_every_n_steps": 1, "checkpoint_every_n_minutes": 0, "keep_checkpoints": 2},
        "run": {"dir": str(run_dir), "name": name},
    })
    cfg = deep_merge(cfg, sections)
    path = run_dir / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path, *extra: str, launcher: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen([*launcher, HI2M_BIN, "pretrain", "-c", str(cfg), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)


def run_here(command: str, cfg: Path, *extra: str) -> subprocess.CompletedProcess:
    """A run that is not interrupted, in this process with one thread as the subprocesses (``ENV``): the
    reference run and the resumed one. Only the run that is killed needs a process of its own."""
    proc = hi2m_here(cfg.parent, command, "-c", str(cfg), *extra, env={"PL_DISABLE_FORK": "1"}, threads=1)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def wait_for_step(proc: subprocess.Popen, folder: Path, step: int, timeout: float = 240) -> None:
    """Poll until a step checkpoint >= ``step`` exists (the run is then at or just past that step)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(int(p.stem.split("-")[1]) >= step for p in folder.glob("step-*.ckpt")):
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before step {step}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.005)
    raise AssertionError(f"no checkpoint of step {step} within {timeout}s")


def step_losses(run: Path) -> dict[int, float]:
    """train/loss by global step, over every session's metrics.csv."""
    out = {}
    for path in sorted(run.glob("logs/**/metrics.csv")):
        with open(path) as f:
            for r in csv.DictReader(f):
                if r.get("train/loss"):
                    out[int(r["step"])] = float(r["train/loss"])
    return out


def assert_same_run(a: Path, b: Path, resumed_from: int) -> None:
    from safetensors.torch import load_file

    la, lb = step_losses(a), step_losses(b)
    assert len(la) == 21 and set(lb) <= set(la)
    # SIGKILL can land between a step's checkpoint and the flush of that step's log row (milliseconds): that
    # one row may be missing; the training itself is not affected
    assert set(la) - set(lb) <= {resumed_from - 1}, (sorted(la), sorted(lb), resumed_from)
    for step in lb:  # every step, the ones before the kill and the resumed ones
        assert lb[step] == pytest.approx(la[step], rel=1e-6, abs=1e-7), step
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-6, atol=1e-7)
    with open(a / "loss_stats.csv") as f, open(b / "loss_stats.csv") as g:
        ra, rb = list(csv.DictReader(f)), list(csv.DictReader(g))
    assert [r["epoch"] for r in rb] == ["0.0", "1.0", "2.0"]
    for x, y in zip(ra, rb):  # Table 10 statistics of the interrupted epoch include the clips before the kill
        assert float(y["L_R_mean"]) == pytest.approx(float(x["L_R_mean"]), rel=1e-6)


def kill_mid_epoch_and_resume(root: Path, tmp: Path, **sections) -> None:
    ddp = sections.get("trainer", {}).get("devices", 1) > 1  # Lightning starts rank 1 by rerunning sys.argv

    def finish(cfg: Path, *extra: str) -> None:  # an uninterrupted run: in this process unless it is DDP
        if ddp:
            proc = start(cfg, *extra)
            assert proc.wait(timeout=600) == 0, proc.stdout.read()[-3000:]
        else:
            run_here("pretrain", cfg, *extra)

    full = write_cfg(root, tmp, "full", **sections)
    finish(full)
    cut = write_cfg(root, tmp, "cut", **sections)
    target = random.randrange(8, 13)  # inside the second epoch (steps 8..14)
    proc = start(cut)
    wait_for_step(proc, tmp / "cut" / "checkpoints", target)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: DDP's second rank too
    proc.wait()
    newest = max(int(p.stem.split("-")[1]) for p in (tmp / "cut" / "checkpoints").glob("step-*.ckpt"))
    assert 8 <= newest < 14, f"killed at step {newest}, not mid-epoch (target {target})"
    assert not (tmp / "cut" / "model").exists()
    finish(cut, "--resume", str(tmp / "cut"))
    assert_same_run(tmp / "full", tmp / "cut", newest)


def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(synth_root, tmp_path):
    kill_mid_epoch_and_resume(synth_root, tmp_path)
    kept = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("step-*.ckpt"))
    assert len(kept) == 2  # trainer.keep_checkpoints


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_two_process_ddp(synth_root, tmp_path):
    kill_mid_epoch_and_resume(synth_root, tmp_path, trainer={"devices": 2, "strategy": "ddp"},
                              data={"batch_size": 2})


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_checkpoints_exits_75_and_resume_auto_finishes(synth_root, tmp_path, signum):
    cfg = write_cfg(synth_root, tmp_path, "job", trainer={"checkpoint_every_n_steps": 0})  # only the signal writes
    proc = start(cfg, "--resume", "auto")  # the same command for the first submission and the requeued one
    deadline = time.monotonic() + 240
    losses: dict[int, float] = {}
    while not losses or max(losses) < 9:  # one read per look: the log may be rewritten while it is read
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:] if proc.poll() else ""
        time.sleep(0.01)
        losses = step_losses(tmp_path / "job")
    sent_after = max(losses)
    os.kill(proc.pid, signum)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 75, out[-3000:]
    assert signal.Signals(signum).name in out and "--resume" in out
    steps = [int(p.stem.split("-")[1]) for p in (tmp_path / "job" / "checkpoints").glob("step-*.ckpt")]
    # the checkpoint is taken at the first step boundary after the signal, and no step runs after it (how
    # many steps ran between the look and the signal depends on the machine's load, not on hi2m)
    assert len(steps) == 1 and sent_after < steps[0] == max(step_losses(tmp_path / "job")) + 1, (steps, sent_after)
    again = run_here("pretrain", cfg, "--resume", "auto")  # the requeued job
    assert "continuing" in again.stdout + again.stderr
    assert sorted(step_losses(tmp_path / "job")) == list(range(21))


def test_torchrun_two_processes_through_the_hi2m_entry_point(synth_root, tmp_path):
    """The path multi-node users take: torchrun starts the ranks, hi2m's Trainer joins them (gloo)."""
    from hi2m.model import objectives as obj

    cfg = write_cfg(synth_root, tmp_path, "trun", optim={"epochs": 1},
                    trainer={"devices": 2, "strategy": "ddp", "limit_train_batches": 3, "checkpoint_every_n_steps": 0})
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    proc = start(cfg, launcher=(torchrun, "--standalone", "--nproc_per_node=2", "--no-python"))
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    ranks = json.loads((tmp_path / "trun" / "ranks.json").read_text())
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["global_step"] == ranks[1]["global_step"] == 3
    assert ranks[0]["param_checksum"] == pytest.approx(ranks[1]["param_checksum"], rel=1e-9)
    local = [torch.tensor(r["sample_loss"]) for r in ranks]
    got = torch.cat([torch.tensor(r["hsm_weights"]) for r in ranks])
    torch.testing.assert_close(got, obj.hsm_weights(torch.cat(local)), rtol=1e-5, atol=1e-6)  # global HSM


# ---- bad states ------------------------------------------------------------------------------------

def test_a_corrupt_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path, caplog):
    from hi2m.train.checkpointing import newest_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (3, 5):
        torch.save({"global_step": step, "state_dict": {}}, folder / f"step-{step:09d}.ckpt")
    good = (folder / "step-000000005.ckpt").read_bytes()
    (folder / "step-000000007.ckpt").write_bytes(good[: len(good) // 2])  # truncated mid-write by a crash
    assert newest_checkpoint(tmp_path) == folder / "step-000000005.ckpt"
    assert "step-000000007.ckpt" in caplog.text
    # a complete file whose tensor data was damaged on disk (header and index intact): caught by the CRCs
    torch.save({"global_step": 9, "state_dict": {"w": torch.arange(4096, dtype=torch.float32)}},
               folder / "step-000000009.ckpt")
    damaged = bytearray((folder / "step-000000009.ckpt").read_bytes())
    at = damaged.find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[4000:4016])
    assert at > 0
    damaged[at: at + 4] = b"\xff\xff\xff\xff"
    (folder / "step-000000009.ckpt").write_bytes(bytes(damaged))
    assert torch.load(folder / "step-000000009.ckpt", weights_only=True)["global_step"] == 9  # loads silently
    caplog.clear()
    assert newest_checkpoint(tmp_path) == folder / "step-000000005.ckpt"
    assert "step-000000009.ckpt" in caplog.text and "checksum" in caplog.text
    for path in folder.glob("*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="every checkpoint .* is unreadable"):
        newest_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        newest_checkpoint(tmp_path / "elsewhere")


def test_resuming_with_a_changed_config_is_refused_unless_forced(synth_root, tmp_path):
    from hi2m.train.config import load_config
    from hi2m.train.runner import pretrain

    cfg_path = write_cfg(synth_root, tmp_path, "run", optim={"epochs": 1}, trainer={"checkpoint_every_n_steps": 0})
    pretrain(load_config(cfg_path))
    changed = load_config(cfg_path, ["model.mask_ratio=0.5", "data.batch_size=2", "data.num_workers=1"])
    with pytest.raises(ValueError) as err:
        pretrain(changed, resume=tmp_path / "run")
    assert "model.mask_ratio: 0.75 -> 0.5" in str(err.value) and "data.batch_size: 4 -> 2" in str(err.value)
    assert "num_workers" not in str(err.value)  # how a run is executed may change
    harmless = load_config(cfg_path, ["data.num_workers=1", "optim.epochs=2"])
    with pytest.raises(ValueError, match="optim.epochs"):
        pretrain(harmless, resume=tmp_path / "run")
    out = pretrain(load_config(cfg_path, ["optim.epochs=2"]), resume=tmp_path / "run", force=True)
    assert [s["epoch"] for s in out["epoch_stats"]] == [1.0]


def test_an_unwritable_or_full_run_directory_is_refused_before_training(synth_root, tmp_path, monkeypatch):
    import shutil

    from hi2m.train.config import load_config
    from hi2m.train.runner import pretrain

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = load_config(write_cfg(synth_root, tmp_path, "x"), [f"run.dir={blocker}/runs"])
    with pytest.raises(OSError, match="not writable"):
        pretrain(cfg)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(OSError, match="GiB free"):
        pretrain(load_config(write_cfg(synth_root, tmp_path, "y")))
    assert not list((tmp_path / "y").glob("checkpoints/*.ckpt"))


def test_sampler_skips_only_the_resumed_epoch():
    from hi2m.train.callbacks import EpochSampler

    s = EpochSampler(10, world=2, rank=1, seed=3)
    s.set_epoch(4)
    full = list(s)
    s.skip_in_epoch(4, 2)
    assert list(s) == full[2:]
    assert list(s) == full  # once only
    s.skip_in_epoch(3, 2)
    assert list(s) == full  # another epoch: nothing skipped


def test_finetune_preempted_mid_epoch_resumes_to_the_same_model(synth_root, tmp_path):
    """Fine-tuning too (mixup, drop path, per-epoch validation): SIGTERM mid-epoch, exit 75, resume, and the
    selected model and its test predictions equal an uninterrupted run's."""
    from safetensors.torch import load_file

    def cfg(name):
        path = write_cfg(synth_root, tmp_path, name, optim={"epochs": 2}, data={"val_split": "val"},
                         finetune={"mixup": 0.8, "cutmix": 1.0, "drop_path": 0.1, "select": "val"},
                         trainer={"checkpoint_every_n_steps": 0})
        return path

    def run(path, *extra):
        return subprocess.Popen([HI2M_BIN, "finetune", "-c", str(path), *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True)

    run_here("finetune", cfg("ft-full"))
    cut_cfg = cfg("ft-cut")
    proc = run(cut_cfg)
    deadline = time.monotonic() + 240
    while max(step_losses(tmp_path / "ft-cut") or [-1]) < 9:  # the second epoch has begun
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 75
    run_here("finetune", cut_cfg, "--resume", str(tmp_path / "ft-cut"))
    a = load_file(str(tmp_path / "ft-full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "ft-cut" / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-6, atol=1e-7)
    fa = json.loads((tmp_path / "ft-full" / "metrics.json").read_text())
    fb = json.loads((tmp_path / "ft-cut" / "metrics.json").read_text())
    assert fb["uar"] == pytest.approx(fa["uar"]) and fb["war"] == pytest.approx(fa["war"])


def test_resume_auto_needs_a_config():
    proc = subprocess.run([HI2M_BIN, "pretrain", "--resume", "auto"], capture_output=True, text=True, env=ENV)
    assert proc.returncode != 0 and "--resume auto needs --config" in proc.stderr
