"""The typed run configuration: every bad key, type, choice or range is one line naming it and exit code 2;
``hi2m config show``; configs written by an earlier version still load, resume and evaluate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _cli import hi2m_here
from hi2m.train.config import DEFAULTS, ConfigError, RunConfig, as_config, describe, load_config

HI2M = str(Path(sys.executable).with_name("hi2m"))
FIXTURES = Path(__file__).parent / "fixtures"

# (command-line arguments after the command, the key or text the one-line error must name)
BAD = [
    (["optim.lerning_rate=1"], "optim.lerning_rate: unknown key (did you mean base_lr?)"),
    (["data.bacth_size=4"], "data.bacth_size: unknown key (did you mean batch_size?)"),
    (["optimm.base_lr=1e-3"], "optimm: unknown section (did you mean optim?)"),
    (["model.mask_type=foo"], "model.mask_type: expected one of random, tube, hrd, got 'foo'"),
    (["model.hsm_actvation=relu"], "model.hsm_actvation: unknown key (did you mean hsm_activation?)"),
    (["model.size=huge"], "model.size: expected one of micro, tiny, small, base, got 'huge'"),
    (["optim.base_lr=fast"], "optim.base_lr: expected a number, got 'fast'"),
    (["data.batch_size=eight"], "data.batch_size: expected an integer, got 'eight'"),
    (["data.batch_size=0"], "data.batch_size: must be >= 1, got 0"),
    (["data.num_workers=-1"], "data.num_workers: must be >= 0, got -1"),
    (["optim.epochs=-3"], "optim.epochs: must be >= 1, got -3"),
    (["trainer.max_steps=-5"], "trainer.max_steps: must be >= -1, got -5"),
    (["trainer.max_steps=0"], "trainer.max_steps: must be -1"),
    (["optim.base_lr=0"], "optim.base_lr: must be > 0, got 0.0"),
    (["data.val_fraction=1.5"], "data.val_fraction: must be < 1, got 1.5"),
    (["optim.lr_scaling=sqrt"], "optim.lr_scaling: expected one of linear, none, got 'sqrt'"),
    (["finetune.select=best"], "finetune.select: expected one of val, last, got 'best'"),
    (["trainer.precision=fp8"], "trainer.precision: expected one of 32-true"),
    (["model.hsm=maybe"], "model.hsm: expected true or false, got 'maybe'"),
    (["data.dataset=imagenet"], "data.dataset: unknown dataset 'imagenet'"),
    (["optim.betas=[0.9]"], "optim.betas: expected two values in [0, 1), got [0.9]"),
    (["model.mask_ratio=1.0"], "model: mask_ratio must be in [0, 1), got 1.0"),
    (["optim.base_lr"], "override 'optim.base_lr': expected section.key=value"),
    (["optim.base_lr=[1"], "override 'optim.base_lr=[1': the value is not valid YAML"),
    (["seed=-1"], "seed: must be >= 0, got -1"),
    (["-c", "missing.yaml"], "missing.yaml: config file not found"),
    (["-c", "child.yaml"], "base file"),  # child.yaml names a base file that does not exist
    (["-c", "broken.yaml"], "broken.yaml: invalid YAML"),
    (["-c", "list.yaml"], "list.yaml: a config file must hold a mapping at the top level"),
    (["--resume", "auto"], "--resume auto needs --config"),
    (["--resume", "nowhere"], "--resume nowhere: not a run directory (no config.yaml)"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cfgs")
    (d / "child.yaml").write_text("base: absent.yaml\noptim: {epochs: 2}\n")
    (d / "broken.yaml").write_text("optim: {base_lr: [1e-3\n")
    (d / "list.yaml").write_text("- 1\n- 2\n")
    return d


# every other case runs through the installed command (a process each, ~1.5 s); the rest in-process
THROUGH_THE_COMMAND = BAD[::2] + BAD[1:2]


def _check_one_line(rc: int, stderr: str, expected: str, workdir: Path) -> None:
    assert rc == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("hi2m pretrain: error: ") and expected in lines[0], lines[0]
    assert not (workdir / "runs").exists()  # nothing started


@pytest.mark.parametrize("args,expected", THROUGH_THE_COMMAND, ids=[" ".join(a) for a, _ in THROUGH_THE_COMMAND])
def test_a_bad_configuration_is_one_line_naming_the_key_and_exit_2(workdir, args, expected):
    proc = subprocess.run([HI2M, "pretrain", *args], capture_output=True, text=True, cwd=workdir, timeout=120)
    _check_one_line(proc.returncode, proc.stderr, expected, workdir)


def test_every_bad_configuration_in_process(workdir, capsys, monkeypatch):
    from hi2m.cli import main

    assert len(THROUGH_THE_COMMAND) >= 15
    monkeypatch.chdir(workdir)
    for args, expected in BAD:
        rc = main(["pretrain", *args])
        _check_one_line(rc, capsys.readouterr().err, expected, workdir)


def test_every_command_that_reads_a_config_says_the_same(workdir):
    for command in (["finetune"], ["evaluate", "--model", "m"], ["config", "show"]):
        proc = subprocess.run([HI2M, *command, "data.batch_size=0"], capture_output=True, text=True, cwd=workdir,
                              timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"hi2m {command[0]}: error: data.batch_size: must be >= 1, got 0"


def test_config_show_prints_the_resolved_values_with_their_docs(workdir):
    proc = subprocess.run([HI2M, "config", "show", "-c", str(Path(__file__).parent.parent / "configs" /
                                                               "finetune_dfew.yaml"), "optim.epochs=7"],
                          capture_output=True, text=True, cwd=workdir, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    epochs = next(line for line in lines if line.strip().startswith("epochs:"))
    assert "epochs: 7" in epochs and "# training epochs" in epochs
    assert any(line.strip().startswith("batch_size:") and "# clips per device per step" in line for line in lines)
    assert f"dir: {workdir / 'runs'}" in proc.stdout  # paths resolved against where the command runs
    assert any("mask_type: hrd" in line for line in lines)  # the model's fields, from its size


def test_every_field_has_a_doc_and_the_defaults_round_trip():
    text = describe(RunConfig())
    body = [line for line in text.splitlines() if ":" in line and not line.endswith(":")]
    assert body and all("  # " in line and line.split("  # ")[1].strip() for line in body)
    assert RunConfig.from_dict(DEFAULTS).to_dict() == DEFAULTS
    cfg = load_config(None, ["optim.warmup_epochs=2", "trainer.limit_train_batches=3",
                             "trainer.limit_val_batches=0.5", "finetune.rand_augment=[2, 9]"])
    assert cfg.optim.warmup_epochs == 2.0 and isinstance(cfg.optim.warmup_epochs, float)
    assert cfg.trainer.limit_train_batches == 3 and isinstance(cfg.trainer.limit_train_batches, int)  # a count
    assert cfg.trainer.limit_val_batches == 0.5  # a share
    assert cfg.finetune.rand_augment == [2, 9.0] and isinstance(cfg.finetune.rand_augment[0], int)
    with pytest.raises(ConfigError):
        as_config({"data": {"batch_size": 0}})


# ---- configs written before the typed configuration ------------------------------------------------------

def _old_run(tmp_path: Path, name: str) -> Path:
    """A run directory holding a config.yaml written by the untyped config of 2026-12-01 (paths moved here)."""
    text = (FIXTURES / f"config-2026-12-01-{name}.yaml").read_text().replace("/FIXTURE", str(tmp_path))
    run = tmp_path / "runs" / f"old-{name}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(text)
    return run


def test_a_run_saved_before_the_change_resumes_and_its_model_evaluates(tmp_path):
    text = (FIXTURES / "config-2026-12-01-pretrain.yaml").read_text().replace("/FIXTURE", str(tmp_path))
    (tmp_path / "old.yaml").write_text(text)
    old = load_config(tmp_path / "old.yaml")
    assert old.data.decode_time_limit == 60.0  # a key it did not have: the default
    assert old.optim.warmup_epochs == 1.0 and old.model_config().mask_ratio == 0.75
    from hi2m.train.runner import evaluate, finetune, pretrain

    run = tmp_path / "runs" / "old-pretrain"
    pretrain(old)
    (run / "config.yaml").write_text(text)  # the run as the old version left it: its config.yaml, checkpoints
    shutil.rmtree(run / "model")
    changed = hi2m_here(tmp_path, "pretrain", "--resume", str(run), "optim.epochs=3")
    assert changed.returncode == 2 and "optim.epochs: 2 -> 3" in changed.stderr  # compared key by key
    resumed = hi2m_here(tmp_path, "pretrain", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run / "model" / "model.safetensors").is_file()
    ft_text = (FIXTURES / "config-2026-12-01-finetune.yaml").read_text().replace("/FIXTURE", str(tmp_path))
    (tmp_path / "old-ft.yaml").write_text(ft_text)
    tuned = finetune(load_config(tmp_path / "old-ft.yaml"), verbose=False)
    again = evaluate(load_config(tmp_path / "old-ft.yaml", ["run.name=eval"]), tuned["model_dir"])["result"]
    assert torch.equal(again.confusion, tuned["result"].confusion)  # the old config's model evaluates the same
