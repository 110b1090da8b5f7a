"""benchmarks/gpu_check.py end to end on a CPU at smoke sizes: every stage writes its fields, a run cut short
keeps what it measured, and the budget plan says what it skips. No timing is asserted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="gpu_check compares against transformers (the 'parity' extra)")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _run(*args, **kw):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    # a relative --out, from another working directory: the folder lands where the user stands
    proc = _run("--device", "cpu", "--smoke", "--out", "check", cwd=out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "check", proc.stdout


def test_every_stage_writes_its_fields(smoke):
    out, stdout = smoke
    data = json.loads((out / "gpu_check.json").read_text())
    st = data["stages"]
    assert {"env", "correctness", "step", "max_batch", "data", "study"} <= set(st)
    assert st["env"]["device"] == "cpu" and st["env"]["bf16_peak_flops"] > 0 and st["env"]["bf16_peak_source"]

    checks = {k: v for k, v in st["correctness"].items() if isinstance(v, dict) and "rel_err" in v}
    names = " ".join(checks)
    for eq in ("encoder vs float64 transformers", "Eq. 1 dual targets", "Eq. 2-3 HSM weights", "Eq. 4 HSM loss",
               "Eq. 7 HRD loss", "HI2M loss, Eq. 8"):
        assert f"{eq} (fp32" in names and f"{eq} (bf16" in names, eq
    assert all(v["pass"] and 0 <= v["rel_err"] <= v["tol"] for v in checks.values())
    assert checks["Eq. 1 dual targets (fp32 inputs)"]["rel_err"] > 0  # float32 against float64: not the same code
    assert st["correctness"]["all_pass"] is True
    # bf16 really ran in bf16: its error is well above fp32 rounding on the encoder
    assert checks["encoder vs float64 transformers (bf16)"]["rel_err"] > 10 * checks[
        "encoder vs float64 transformers (fp32)"]["rel_err"]

    assert set(st["step"]) == {"micro/bf16/eager", "micro/fp32/eager", "micro/bf16/compiled"}
    for key, row in st["step"].items():
        for peer in ("transformers", "hi2m", "hi2m-dec0.5"):
            r = row[peer]
            assert r["step_s"] > 0 and r["clips_per_s"] > 0 and r["flops"] > 0 and 0 < r["mfu"], (key, peer)
        assert row["transformers"]["time_vs_transformers"] == 1.0
    # decoder masking decodes half the masked tokens: fewer FLOPs than the full method, counted, not timed
    eager = st["step"]["micro/fp32/eager"]
    assert eager["hi2m-dec0.5"]["flops"] < eager["hi2m"]["flops"]

    mb = st["max_batch"]["micro/bf16"]
    assert all(mb[p]["max_batch"] >= 2 for p in ("transformers", "hi2m", "hi2m-dec0.5"))

    d = st["data"]
    assert d["clips_per_s_one_worker"] > 0 and d["clips_per_s_loader"] > 0
    assert set(d["views_per_cpu_s"]) == {"worker", "device"} and d["repeats"] == 2
    assert set(d["workers_needed"]) == {"micro bf16 eager", "micro fp32 eager", "micro bf16 compiled"}
    assert all(v["workers"] >= 1 for v in d["workers_needed"].values())

    study = st["study"]
    assert study["pretrain"]["steps"] >= 4 and study["pretrain"]["s_per_step"] > 0
    for budget in ("3", "1"):
        rows = study["finetune"][budget]
        for init in ("HI2M", "random init"):
            assert 0 <= rows[init]["uar"] <= 100
        assert rows["gain"] == pytest.approx(rows["HI2M"]["uar"] - rows["random init"]["uar"])
    assert study["cpu_study"]["uar"]["300"]["HI2M"] > 0

    md = (out / "gpu_check.md").read_text()
    for header in ("| check | rel. error", "| size | precision | mode | model", "largest batch", "Data path",
                   "| clips/class | HI2M UAR"):
        assert header in md
    assert "0 stage(s) failed" in stdout


def test_the_plan_says_what_a_short_budget_skips():
    proc = _run("--device", "cpu", "--plan-only", "--budget-minutes", "3")
    assert proc.returncode == 0, proc.stderr
    run = next(line for line in proc.stdout.splitlines() if "will run:" in line)
    skip = next(line for line in proc.stdout.splitlines() if "will skip" in line)
    assert "env" in run and "correctness" in run and "step-eager base/bf16" in run
    assert "study" in skip and "step-compiled small/bf16" in skip and "study" not in run
    long = _run("--device", "cpu", "--plan-only", "--budget-minutes", "30")
    assert "will skip (budget): nothing" in long.stdout and "study: about" in long.stdout


def test_a_run_cut_short_keeps_what_it_measured(tmp_path):
    out = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    data = {}
    try:
        while time.time() < deadline and proc.poll() is None:
            try:
                data = json.loads((out / "gpu_check.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                data = {}
            if "correctness" in data.get("stages", {}):
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run is cut short
        proc.wait()
    assert "correctness" in data.get("stages", {}), "the run ended before it wrote the correctness stage"
    kept = json.loads((out / "gpu_check.json").read_text())  # still whole JSON: every write was atomic
    assert kept["stages"]["env"]["device"] == "cpu" and kept["stages"]["correctness"]["all_pass"] is True
    assert "| check | rel. error" in (out / "gpu_check.md").read_text()


def test_the_float64_reference_is_independent_and_can_fail():
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    import gpu_check

    from hi2m.model import objectives as obj

    g = torch.Generator().manual_seed(3)
    clip = torch.rand(2, 3, 4, 16, 16, generator=g, dtype=torch.float64)
    pred = torch.randn(2, 8, 2 * 8 * 8 * 3, generator=g, dtype=torch.float64)
    masked = torch.rand(2, 8, generator=g) < 0.6
    masked[:, 0] = True
    logits = torch.randn(2, 8, generator=g, dtype=torch.float64)
    ref = gpu_check.reference_equations(clip, pred, logits, masked, patch=8, tubelet=2)
    target = obj.dual_targets(clip.float(), patch_size=8, tubelet_size=2)
    tok = obj.token_losses(pred.float(), target)
    assert gpu_check._rel_err(target, ref["Eq. 1 dual targets"]) < 1e-5
    assert gpu_check._rel_err(tok, ref["Eq. 1 token losses"]) < 1e-5
    hrd = obj.hrd_loss(torch.log_softmax(logits.float(), -1), tok, masked)
    assert gpu_check._rel_err(hrd, ref["Eq. 7 HRD loss"]) < 1e-5
    swapped = torch.cat([target[..., 192:], target[..., :192]], -1)  # motion before appearance: wrong
    assert gpu_check._rel_err(swapped, ref["Eq. 1 dual targets"]) > 0.1
