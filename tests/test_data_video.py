"""Decoding: exact frame indices, seeking, repeated sampling, frame folders, odd inputs."""

from __future__ import annotations

import numpy as np
import pytest

av = pytest.importorskip("av")

from hi2m.data.errors import DecodeError  # noqa: E402
from hi2m.data.video import (  # noqa: E402
    FrameFolderSource,
    VideoFileSource,
    natural_key,
    open_clip_source,
    read_windows,
)
from hi2m.data.writer import index_pattern, read_index_pattern, write_frame_folder, write_video  # noqa: E402


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def pattern_video(path, n: int, **kwargs):
    return write_video(path, (index_pattern(i) for i in range(n)), **kwargs)


def decoded_indices(frames: np.ndarray) -> list[int]:
    return [read_index_pattern(f) for f in frames]


@pytest.fixture(scope="module")
def long_h264(tmp_path_factory):
    """150 frames, keyframe every 12 frames, B-frames on (libx264 default)."""
    return pattern_video(tmp_path_factory.mktemp("v") / "long.mp4", 150, gop=12)


def test_index_pattern_roundtrip_without_compression():
    assert [read_index_pattern(index_pattern(i)) for i in (0, 1, 77, 128, 255)] == [0, 1, 77, 128, 255]


def test_reader_reports_frames_fps_size_and_keyframes(long_h264):
    with open_clip_source(long_h264) as source:
        assert isinstance(source, VideoFileSource)
        assert source.num_frames == 150
        assert source.fps == pytest.approx(25.0)
        assert source.size == (64, 64)
        keys = source.keyframes
        assert keys[0] == 0 and len(keys) >= 150 // 12  # the seek points exist
        assert np.all(np.diff(keys) <= 12)


def test_window_in_the_middle_returns_exact_frames_and_decodes_little(long_h264):
    wanted = np.arange(100, 116)  # 16 frames after a seek into the middle
    with open_clip_source(long_h264) as source:
        frames = source.read(wanted)
        assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8
        assert decoded_indices(frames) == wanted.tolist()
        # from the keyframe at or before 100 to 115, plus reorder delay: far fewer than 116
        assert source.frames_decoded <= 16 + 12 + 4


def test_random_index_sets_are_exact_in_any_order(long_h264):
    rng = np.random.default_rng(0)
    with open_clip_source(long_h264) as source:
        for _ in range(5):
            wanted = rng.integers(0, 150, size=10)  # unsorted, may repeat
            assert decoded_indices(source.read(wanted)) == wanted.tolist()
        last = source.read([149, 0])
        assert decoded_indices(last) == [149, 0]


@pytest.mark.parametrize(
    "codec, ext, fps",
    [("libx264", "mkv", 30), ("mpeg4", "avi", 29.97), ("libx264", "mov", 24), ("libx265", "mp4", 25)],
)
def test_exact_indices_across_codecs_and_frame_rates(tmp_path, codec, ext, fps):
    if not has_encoder(codec):
        pytest.skip(f"PyAV's FFmpeg has no {codec} encoder")
    path = pattern_video(tmp_path / f"clip.{ext}", 60, codec=codec, fps=fps, gop=12)
    wanted = np.arange(30, 60, 2)
    with open_clip_source(path) as source:
        assert source.num_frames == 60
        assert source.fps == pytest.approx(fps, rel=1e-3)
        assert decoded_indices(source.read(wanted)) == wanted.tolist()


def test_read_windows_decodes_the_union_once(long_h264):
    windows = [np.arange(10, 26, 1), np.arange(20, 36, 1), np.array([140, 141, 5])]
    with open_clip_source(long_h264) as source:
        clips = read_windows(source, windows)
        decoded = source.frames_decoded
    assert [decoded_indices(c) for c in clips] == [w.tolist() for w in windows]
    # one pass over 0..41 (plus a seek near 140) instead of three separate decodes
    assert decoded < 42 + 12 + 4 + 12


def test_frame_folder_natural_order_and_grayscale(tmp_path):
    folder = tmp_path / "clip"
    frames = [index_pattern(i, 40, 48) for i in range(12)]
    write_frame_folder(folder, frames, ext="png")  # 1.png ... 12.png
    gray = np.asarray(frames[0][..., 0])
    from PIL import Image

    Image.fromarray(gray, mode="L").save(folder / "13.png")  # a grayscale frame
    source = open_clip_source(folder)
    assert isinstance(source, FrameFolderSource)
    assert source.num_frames == 13 and source.size == (40, 48) and source.fps is None
    out = source.read([1, 9, 10, 12])  # 2.png, 10.png, 11.png, 13.png
    assert out.shape == (4, 40, 48, 3)
    assert decoded_indices(out[:3]) == [1, 9, 10]
    assert np.array_equal(out[3], np.repeat(gray[..., None], 3, axis=2))


def test_natural_key_orders_numbers_by_value():
    names = ["10.jpg", "2.jpg", "img_1.jpg", "1.jpg", "img_10.jpg", "img_9.jpg"]
    assert sorted(names, key=natural_key) == ["1.jpg", "2.jpg", "10.jpg", "img_1.jpg", "img_9.jpg", "img_10.jpg"]


def test_grayscale_video_is_expanded_to_rgb(tmp_path):
    if not has_encoder("ffv1"):
        pytest.skip("PyAV's FFmpeg has no ffv1 encoder for a true gray8 video")
    levels = [0, 60, 120, 180, 240]
    frames = [np.full((32, 48), v, dtype=np.uint8) for v in levels]
    path = write_video(tmp_path / "gray.mkv", frames, codec="ffv1", pix_fmt="gray")
    with open_clip_source(path) as source:
        out = source.read(range(5))
    assert out.shape == (5, 32, 48, 3)
    assert np.array_equal(out[..., 0], out[..., 2])  # gray: all channels equal
    assert np.abs(out.mean(axis=(1, 2, 3)) - np.array(levels)).max() < 3


def test_odd_frame_size_video(tmp_path):
    frames = [np.full((97, 161, 3), 10 * i, dtype=np.uint8) for i in range(6)]
    path = write_video(tmp_path / "odd.avi", frames, codec="mpeg4")
    with open_clip_source(path) as source:
        assert source.size == (97, 161)
        out = source.read([0, 5])
    assert out.shape == (2, 97, 161, 3)
    assert out[1].mean() > out[0].mean() + 30


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 20])
def test_empty_or_text_file_named_mp4_is_a_decode_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(DecodeError) as info:
        open_clip_source(path)
    assert str(path) in str(info.value)


def test_truncated_mp4_is_a_decode_error(tmp_path):
    full = pattern_video(tmp_path / "full.mp4", 60, gop=12).read_bytes()
    for name, data in [("cut_moov.mp4", full[: len(full) // 2])]:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DecodeError, match=name):
            open_clip_source(path)


def test_truncated_faststart_mp4_reports_missing_frames(tmp_path):
    # moov atom first: the header survives, the frame data does not
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(index_pattern(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(DecodeError, match="truncated"):
        open_clip_source(cut)


def test_missing_clip_and_empty_folder_are_decode_errors(tmp_path):
    with pytest.raises(DecodeError, match="does not exist"):
        open_clip_source(tmp_path / "nope.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DecodeError, match="no decodable frames"):
        open_clip_source(tmp_path / "empty")


def test_corrupt_jpg_in_folder_names_the_frame(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", [index_pattern(i) for i in range(3)])
    (folder / "2.jpg").write_bytes(b"garbage")
    source = open_clip_source(folder)
    assert source.read([0]).shape == (1, 64, 64, 3)
    with pytest.raises(DecodeError, match="2.jpg"):
        source.read([0, 1])


def test_out_of_range_indices_are_rejected(long_h264):
    with open_clip_source(long_h264) as source, pytest.raises(IndexError, match="long.mp4"):
        source.read([0, 150])


@pytest.mark.parametrize("threads", [1, 2])
def test_frames_nobody_asked_for_are_skipped_and_the_rest_is_pixel_exact(tmp_path, threads):
    """Sparse windows (stride 4) from a noisy B-frame file: every frame read equals the same frame of a full,
    plain decode, bit for bit, while unwanted frames that nothing refers to are never decoded."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)  # (160, 240, 3)
    frames = [np.clip(base[t:t + 64, 2 * t:2 * t + 64].astype(int) + rng.integers(-8, 9, (64, 64, 3)), 0, 255)
              .astype(np.uint8) for t in range(80)]
    path = write_video(tmp_path / "noisy.mp4", frames)  # libx264 defaults: one keyframe, B-frames
    container = av.open(str(path))
    plain = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]  # (H, W, 3) each
    container.close()
    windows = [np.arange(3, 63, 4), np.arange(17, 77, 4)]
    with VideoFileSource(path, threads=threads) as source:
        clips = read_windows(source, windows)
        decoded = source.frames_decoded
        again = source.read([70, 2])  # a second read on the same decoder: skipping was switched off again
    for window, clip in zip(windows, clips):
        assert all(np.array_equal(clip[k], plain[i]) for k, i in enumerate(window))
    assert np.array_equal(again[0], plain[70]) and np.array_equal(again[1], plain[2])
    if threads == 1:
        assert decoded < 77  # frames 0..76 span the windows; the non-reference ones among the unwanted are skipped
