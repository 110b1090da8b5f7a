"""Face detectors: MTCNN's parts against straightforward computations, both detectors on real faces."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from _media import astronaut, media, mtcnn_weights
from hi2m.infer.detect import Box, HaarFaceDetector, iou
from hi2m.infer.detectors import make_detector
from hi2m.infer.mtcnn import MTCNNFaceDetector, nms, refine, square

ASTRONAUT_FACE = Box(177, 66, 272, 161)  # where Haar finds it (tests/_media.py)


@pytest.fixture(scope="module")
def mtcnn() -> MTCNNFaceDetector:
    return MTCNNFaceDetector(weights_dir=mtcnn_weights())


# ---- the parts, against plain loops -------------------------------------------------------------

def _nms_reference(boxes: np.ndarray, scores: np.ndarray, threshold: float, by_min: bool) -> list[int]:
    """Greedy NMS written out with pairwise overlaps in float64."""
    n = len(boxes)
    overlap = np.zeros((n, n))
    for i, j in itertools.product(range(n), range(n)):
        w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
        h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
        inter = max(w, 0) * max(h, 0)
        ai = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        aj = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
        overlap[i, j] = inter / (min(ai, aj) if by_min else ai + aj - inter)
    keep, removed = [], set()
    for i in np.argsort(-scores, kind="stable"):
        if i in removed:
            continue
        keep.append(int(i))
        removed |= {j for j in range(n) if overlap[i, j] > threshold}
    return keep


@pytest.mark.parametrize("by_min", [False, True])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_a_plain_greedy_loop(threshold, by_min):
    rng = np.random.default_rng(int(threshold * 10) + by_min)
    xy = rng.uniform(0, 60, (20, 2))
    wh = rng.uniform(10, 40, (20, 2))
    spread = np.concatenate([xy, xy + wh], axis=1)  # (20, 4)
    jittered = spread + rng.uniform(-4, 4, (20, 4))  # near-copies: overlaps above every threshold
    boxes = np.concatenate([spread, jittered])
    scores = rng.permutation(40) / 40.0  # distinct scores: a unique order
    got = nms(torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores), threshold, by_min=by_min).tolist()
    want = _nms_reference(boxes, scores, threshold, by_min)
    assert got == want
    assert 1 < len(want) < 40  # the case is not trivial


def test_refine_and_square_by_hand():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])  # w 20, h 40
    out = refine(boxes, torch.tensor([[0.1, -0.25, 0.5, 0.0]]))
    assert out.tolist() == [[12.0, 10.0, 40.0, 60.0]]
    sq = square(torch.tensor([[10.0, 20.0, 30.0, 60.0]]))  # centre (20, 40), side 40
    assert sq.tolist() == [[0.0, 20.0, 40.0, 60.0]]


def test_pyramid_scales(mtcnn):
    scales = mtcnn.scales(360, 640)
    assert scales[0] == pytest.approx(12 / mtcnn.min_face)
    assert all(b / a == pytest.approx(mtcnn.scale_step) for a, b in zip(scales, scales[1:]))
    assert 360 * scales[-1] >= 12 > 360 * scales[-1] * mtcnn.scale_step


# ---- real faces ---------------------------------------------------------------------------------

def _rotated(img: np.ndarray, angle: float) -> np.ndarray:
    import cv2

    cx, cy = ASTRONAUT_FACE.center
    return cv2.warpAffine(img, cv2.getRotationMatrix2D((cx, cy), angle, 1.0), img.shape[1::-1],
                          borderMode=cv2.BORDER_REFLECT)


def test_mtcnn_finds_the_astronaut_upright_rolled_and_small(mtcnn):
    img = astronaut()
    found = mtcnn.detect(img)
    assert len(found) == 1 and iou(found[0], ASTRONAUT_FACE) > 0.6 and found[0].score > 0.9
    for angle in (-35, 35):  # the face rolled about its centre stays where it was
        boxes = mtcnn.detect(_rotated(img, angle))
        assert any(iou(b, ASTRONAUT_FACE) > 0.4 for b in boxes), angle
    # the whole photo shrunk 4x (face ~24 px) into a grey 512 x 512 frame
    import cv2

    canvas = np.full_like(img, 128)
    canvas[200:328, 300:428] = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)
    small_face = Box(300 + 177 / 4, 200 + 66 / 4, 300 + 272 / 4, 200 + 161 / 4)
    assert any(iou(b, small_face) > 0.4 for b in mtcnn.detect(canvas))


def test_mtcnn_finds_more_rolled_faces_than_haar(mtcnn):
    haar = HaarFaceDetector()
    img = astronaut()
    angles = (-40, -30, 30, 40)
    hits = {name: sum(any(iou(b, ASTRONAUT_FACE) > 0.4 for b in d.detect(_rotated(img, a))) for a in angles)
            for name, d in (("haar", haar), ("mtcnn", mtcnn))}
    assert hits["mtcnn"] == len(angles) and hits["mtcnn"] > hits["haar"], hits


def test_mtcnn_on_real_video_frames(mtcnn):
    import av

    def frames(name, every):
        with av.open(str(media(name))) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][::every]

    faces = frames("single_face.mp4", 12)
    boxes = [mtcnn.detect(f) for f in faces]
    assert all(len(b) == 1 for b in boxes)
    centre_x = [b[0].center[0] / faces[0].shape[1] for b in boxes]
    assert all(0.3 < c < 0.65 for c in centre_x)  # the speaker sits in the middle
    empty = frames("no_face.mp4", 16)
    assert sum(len(mtcnn.detect(f)) for f in empty) == 0


def test_mtcnn_rejects_bad_frames_and_names_missing_weights(mtcnn, tmp_path):
    with pytest.raises(ValueError, match="RGB uint8"):
        mtcnn.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(FileNotFoundError, match="pnet.pt"):
        MTCNNFaceDetector(weights_dir=tmp_path)


def test_make_detector_picks_the_best_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("HI2M_MTCNN_WEIGHTS", str(mtcnn_weights()))
    assert make_detector("auto").name == "mtcnn"
    assert make_detector("haar").name == "haar"
    monkeypatch.setenv("HI2M_MTCNN_WEIGHTS", str(tmp_path))  # a folder without the files: say so
    with pytest.raises(FileNotFoundError, match="HI2M_MTCNN_WEIGHTS"):
        make_detector("auto")
    monkeypatch.delenv("HI2M_MTCNN_WEIGHTS")
    monkeypatch.setattr("hi2m.infer.mtcnn.find_weights", lambda: None)
    assert make_detector("auto").name == "haar"
    with pytest.raises(FileNotFoundError, match="pip install --no-deps"):
        make_detector("mtcnn")
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("yolo")
