"""``hi2m data check``: summary table and exit codes on small fake datasets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hi2m.cli import main
from hi2m.data.writer import index_pattern, write_frame_folder, write_video


def make_csv_dataset(root: Path, broken: bool) -> Path:
    write_video(root / "a.mp4", [index_pattern(i, 32, 32) for i in range(20)], gop=12)
    write_video(root / "b.mp4", [index_pattern(i, 48, 32) for i in range(20)], gop=12)
    write_frame_folder(root / "c", [index_pattern(i, 32, 32) for i in range(3)])
    lines = ["path,label", "a.mp4,Happy", "b.mp4,Happy", "c,Sad"]
    if broken:
        (root / "bad.mp4").write_bytes(b"")
        lines += ["bad.mp4,Fear", "a.mp4,Bored"]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    return root


def test_clean_dataset_exits_0_and_prints_the_summary(tmp_path, capsys):
    root = make_csv_dataset(tmp_path / "clean", broken=False)
    code = main(["data", "check", "csv", str(root), "--split", "train", "--num-frames", "4", "--stride", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Happy" in out and "Sad" in out and "total" in out
    assert "32x32" in out and "48x32" in out  # resolutions
    assert "clips shorter than the window (7 frames, looped): 1" in out and str(root / "c") in out
    assert "unreadable clips: 0" in out and "result: clean" in out


def test_problems_exit_1_and_are_named(tmp_path, capsys):
    root = make_csv_dataset(tmp_path / "broken", broken=True)
    code = main(["data", "check", "csv", str(root), "--split", "train", "--num-frames", "4", "--decode", "full"])
    captured = capsys.readouterr()
    assert code == 1
    assert "unreadable clips: 1" in captured.out and str(root / "bad.mp4") in captured.out
    assert "bad split-file entries: 1" in captured.out and "train.csv:6" in captured.out
    assert "2 problem(s) found" in captured.out


def test_short_clips_fail_only_on_request(tmp_path, capsys):
    root = make_csv_dataset(tmp_path / "short", broken=False)
    args = ["data", "check", "csv", str(root), "--split", "train", "--num-frames", "16", "--stride", "4"]
    assert main(args) == 0
    assert main(args + ["--fail-on-short"]) == 1
    assert "3 problem(s) found" in capsys.readouterr().out  # 20, 20 and 3 frames < 61


def test_missing_root_exits_1_with_the_path(tmp_path, capsys):
    assert main(["data", "check", "dfew", str(tmp_path / "nope")]) == 1
    assert str(tmp_path / "nope") in capsys.readouterr().err


def test_workers_give_the_same_report(tmp_path, capsys):
    root = make_csv_dataset(tmp_path / "w", broken=True)
    base = ["data", "check", "csv", str(root), "--split", "train", "--num-frames", "4"]
    assert main(base) == 1
    serial = capsys.readouterr().out
    assert main(base + ["--workers", "2"]) == 1
    assert capsys.readouterr().out == serial


def test_cli_help_does_not_import_heavy_modules():
    code = (
        "import sys, hi2m.cli as c; c.build_parser();"
        "heavy = [m for m in ('torch', 'numpy', 'av', 'PIL') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
