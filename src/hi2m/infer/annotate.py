"""``--annotated``: the video again, with the tracked face box, the current expression and a
probability bar per class (``--faces all``: every face's box labelled with its id and current expression),
encoded as H.264 (PyAV, libx264) in an .mp4."""

from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction
from pathlib import Path

import numpy as np

from hi2m.infer.detect import Box
from hi2m.infer.frames import SequentialVideo
from hi2m.infer.result import VideoResult, WindowPrediction
from hi2m.infer.track import interpolate

BOX_COLOUR = (0, 220, 0)
BAR_COLOUR = (255, 170, 0)


def current_window(windows: list[WindowPrediction], frame: int, reach: int = 0) -> WindowPrediction | None:
    """The classified window with the centre nearest to ``frame`` among those that cover it or end / start
    at most ``reach`` frames away (windows may leave gaps when the hop is longer than a window); None if none."""
    def gap(w: WindowPrediction) -> int:
        return max(w.start_frame - frame, frame - w.end_frame, 0)

    near = [w for w in windows if w.face and gap(w) <= reach]
    if not near:
        return None
    return min(near, key=lambda w: abs((w.start_frame + w.end_frame) / 2 - frame))


def box_at(frame_boxes: list[tuple[int, Box | None]], frame: int) -> Box | None:
    """The box of a source frame: interpolated between the two sampled frames around it."""
    if not frame_boxes:
        return None
    indices = [i for i, _ in frame_boxes]
    j = bisect_right(indices, frame) - 1
    if j < 0:
        return frame_boxes[0][1]
    if j + 1 >= len(frame_boxes) or indices[j] == frame:
        return frame_boxes[j][1]
    (i0, b0), (i1, b1) = frame_boxes[j], frame_boxes[j + 1]
    return interpolate(b0, b1, (frame - i0) / (i1 - i0))


def label_faces(frame: np.ndarray, faces: list[tuple[int, Box, WindowPrediction | None]]) -> np.ndarray:
    """``--faces all``: each face's box, id and current expression on a copy of an RGB frame (H, W, 3)."""
    import cv2

    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 720)
    thick = max(1, int(round(2 * scale)))
    for face, box, window in faces:
        cv2.rectangle(out, (int(box.x0), int(box.y0)), (int(box.x1), int(box.y1)), BOX_COLOUR, thick)
        text = f"{face}: " + ("-" if window is None or window.probs is None else f"{window.top} {max(window.probs):.2f}")
        y = max(int(box.y0) - 6, int(16 * scale) + 2)
        cv2.putText(out, text, (int(box.x0), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thick + 2,
                    cv2.LINE_AA)
        cv2.putText(out, text, (int(box.x0), y), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thick,
                    cv2.LINE_AA)
    return out


def draw(frame: np.ndarray, box: Box | None, window: WindowPrediction | None, class_names: tuple[str, ...]) -> np.ndarray:
    """Draw the box, the top expression and the probability bars on a copy of an RGB frame (H, W, 3)."""
    import cv2

    out = np.ascontiguousarray(frame.copy())
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 720)
    thick = max(1, int(round(2 * scale)))
    if box is not None:
        cv2.rectangle(out, (int(box.x0), int(box.y0)), (int(box.x1), int(box.y1)), BOX_COLOUR, thick)
    line = int(22 * scale) + 4
    label = "no face" if window is None or window.probs is None else f"{window.top} {max(window.probs):.2f}"
    cv2.putText(out, label, (6, line), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), thick + 1, cv2.LINE_AA)
    if window is not None and window.probs is not None:
        bar_w = int(w * 0.25)
        for i, (name, p) in enumerate(zip(class_names, window.probs)):
            y = line * (i + 2)
            cv2.rectangle(out, (6, y - line + 6), (6 + bar_w, y), (40, 40, 40), -1)
            cv2.rectangle(out, (6, y - line + 6), (6 + int(bar_w * p), y), BAR_COLOUR, -1)
            cv2.putText(out, name, (10 + bar_w, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255),
                        max(1, thick - 1), cv2.LINE_AA)
    return out


def write_annotated(result: VideoResult, out_path: str | Path, crf: int = 23) -> Path:
    """Decode ``result.path`` again and write the annotated video to ``out_path`` (H.264 in .mp4)."""
    import av

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    windows = {f: result.windows_of(f) for f in (result.faces or [])}
    with SequentialVideo(result.path) as video:
        fps = Fraction(video.info.fps).limit_denominator(1001)
        container = av.open(str(out_path), mode="w")
        try:
            stream = None
            for index, _, rgb in video.frames(stride=1):
                h, w = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2  # yuv420p needs even sizes
                if stream is None:
                    stream = container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast"})
                    stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                reach = int(result.settings.get("hop_frames", 0))
                if result.faces is None:
                    window = current_window(result.windows, index, reach=reach)
                    img = draw(rgb[:h, :w], box_at(result.frame_boxes, index), window, result.class_names)
                else:
                    shown = [(f, box_at(result.face_boxes[f], index), current_window(windows[f], index, reach))
                             for f in result.faces  # a face only between its first and last frame
                             if result.face_boxes[f] and result.face_boxes[f][0][0] <= index <= result.face_boxes[f][-1][0]]
                    img = label_faces(rgb[:h, :w], [(f, b, win) for f, b, win in shown if b is not None])
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        finally:
            container.close()
    return out_path
