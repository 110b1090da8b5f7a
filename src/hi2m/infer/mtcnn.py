"""MTCNN face detection (Zhang et al., 2016) in plain PyTorch.

Three small networks run as a cascade:

1. **P-Net** slides over an image pyramid (a fully convolutional 12x12 detector, stride 2) and
   proposes candidate windows;
2. **R-Net** rescores and refines every candidate on a 24x24 crop;
3. **O-Net** does the same on a 48x48 crop and also gives five landmarks (unused here).

Each stage keeps windows over its score threshold, applies its box regression, squares the boxes and
drops overlaps by non-maximum suppression. The weights are not part of hi2m: they ship in the
``facenet-pytorch`` wheel on PyPI (MIT licence, files ``facenet_pytorch/data/{p,r,o}net.pt``, plain
state dicts). That package pins an old torch, so install it **without its dependencies**::

    pip install --no-deps "facenet-pytorch==2.6.0"

hi2m only reads the three weight files (``torch.load(weights_only=True)``, no code from the package
runs). A copy elsewhere: pass ``weights_dir``, or set ``HI2M_MTCNN_WEIGHTS`` to its folder. The
network layouts follow those weight files.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hi2m.infer.detect import Box

WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")


def _has_weights(folder: Path) -> bool:
    return all((folder / name).is_file() for name in WEIGHT_FILES)


def find_weights() -> Path | None:
    """The folder with the MTCNN weight files: ``$HI2M_MTCNN_WEIGHTS``, else an installed
    ``facenet-pytorch``'s (located without importing it: its ``__init__`` needs torchvision); or None.
    """
    env = os.environ.get("HI2M_MTCNN_WEIGHTS")
    if env:
        if not _has_weights(Path(env)):
            raise FileNotFoundError(f"HI2M_MTCNN_WEIGHTS={env}: needs {', '.join(WEIGHT_FILES)} in that folder")
        return Path(env)
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        if _has_weights(Path(root) / "data"):
            return Path(root) / "data"
    return None


class PNet(nn.Module):
    """Proposal net: 12x12 window -> face score (2 logits) and box offsets (4), fully convolutional."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)  # (B, 10, h', w')
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))  # (B, 32, H', W')
        return self.conv4_1(x).softmax(dim=1)[:, 1], self.conv4_2(x)  # (B, H', W'), (B, 4, H', W')


class RNet(nn.Module):
    """Refinement net: 24x24 crop -> face probability and box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)  # (B, 28, 11, 11)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)  # (B, 48, 4, 4)
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        x = x.permute(0, 3, 2, 1).flatten(1)  # (B, 576): the weights expect (W, H, C) order
        x = self.prelu4(self.dense4(x))  # (B, 128)
        return self.dense5_1(x).softmax(dim=1)[:, 1], self.dense5_2(x)  # (B,), (B, 4)


class ONet(nn.Module):
    """Output net: 48x48 crop -> face probability, box offsets (and landmarks, not returned)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)  # (B, 32, 23, 23)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)  # (B, 64, 10, 10)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)  # (B, 64, 4, 4)
        x = self.prelu4(self.conv4(x))  # (B, 128, 3, 3)
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))  # (B, 256)
        return self.dense6_1(x).softmax(dim=1)[:, 1], self.dense6_2(x)  # (B,), (B, 4)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, by_min: bool = False) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first.

    ``boxes`` (N, 4) as x0, y0, x1, y1. A box is dropped when its overlap with a kept, better box
    exceeds ``threshold``; overlap is intersection over union, or over the smaller box (``by_min``,
    what MTCNN's last stage uses so that a box inside a bigger one goes).
    """
    order = scores.argsort(descending=True)
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)  # (N,)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        lo = torch.maximum(boxes[rest, :2], boxes[i, :2])  # (R, 2)
        hi = torch.minimum(boxes[rest, 2:], boxes[i, 2:])  # (R, 2)
        inter = (hi - lo).clamp(min=0).prod(dim=1)  # (R,)
        denom = torch.minimum(areas[rest], areas[i]) if by_min else areas[rest] + areas[i] - inter
        order = rest[inter / denom.clamp(min=1e-9) <= threshold]
    return torch.tensor(keep, dtype=torch.long)


def refine(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply the regression offsets (N, 4), in units of the box's width / height, to boxes (N, 4)."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)  # (N, 4): w, h, w, h
    return boxes + offsets * size


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box (N, 4) to a square around its centre (side = its longer side)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # (N, 2)
    half = (boxes[:, 2:] - boxes[:, :2]).max(dim=1, keepdim=True).values / 2  # (N, 1)
    return torch.cat([centre - half, centre + half], dim=1)


def crops(pixels: np.ndarray, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crops of pixels (H, W, 3) at integer boxes (N, 4), resized to (N, 3, size, size); zero outside."""
    import cv2

    h, w = pixels.shape[:2]
    out = np.zeros((boxes.shape[0], size, size, 3), np.float32)  # (N, size, size, 3)
    for k, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2 or sx1 <= sx0 or sy1 <= sy0:
            continue
        patch = np.zeros((y1 - y0, x1 - x0, 3), np.float32)  # (bh, bw, 3), zero-padded where outside
        patch[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(boxes.device)  # (N, 3, size, size)


class MTCNNFaceDetector:
    """MTCNN cascade as a :class:`~hi2m.infer.detect.FaceDetector`.

    ``min_face`` is the smallest face side searched for, in pixels of the (possibly shrunk) frame;
    ``max_side`` shrinks larger frames first (cost grows with pixels); ``thresholds`` are the three
    stages' score thresholds, ``scale_step`` the pyramid's factor (the paper's values).
    """

    name = "mtcnn"

    def __init__(self, weights_dir: str | Path | None = None, min_face: int = 20, max_side: int = 640,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7), scale_step: float = 0.709,
                 device: str | torch.device = "cpu") -> None:
        folder = Path(weights_dir) if weights_dir is not None else find_weights()
        if folder is None:
            raise FileNotFoundError(
                "MTCNN weights not found: install them with  pip install --no-deps 'facenet-pytorch==2.6.0'  "
                "or point HI2M_MTCNN_WEIGHTS (Python: weights_dir=) at a folder with pnet.pt, rnet.pt, onet.pt")
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, name in zip((self.pnet, self.rnet, self.onet), WEIGHT_FILES):
            path = folder / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: MTCNN weight file missing")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            net.to(device).eval()
        self.device = torch.device(device)
        self.min_face, self.max_side = min_face, max_side
        self.thresholds, self.scale_step = thresholds, scale_step

    def scales(self, h: int, w: int) -> list[float]:
        """Pyramid scales: the first maps ``min_face`` to P-Net's 12 pixels; stop when a side < 12."""
        out, s = [], 12.0 / self.min_face
        while min(h, w) * s >= 12:
            out.append(s)
            s *= self.scale_step
        return out

    @torch.inference_mode()
    def detect(self, frame: np.ndarray) -> list[Box]:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")
        import cv2  # resizing: OpenCV's area filter is cheaper than torch's area interpolation on CPU

        shrink = min(1.0, self.max_side / max(frame.shape[:2]))
        if shrink < 1.0:
            size = (round(frame.shape[1] * shrink), round(frame.shape[0] * shrink))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)  # (h, w, 3)
        pixels = (frame.astype(np.float32) - 127.5) / 128.0  # (h, w, 3)
        boxes, scores = self.propose(pixels)
        boxes, scores = self.stage(pixels, boxes, self.rnet, 24, self.thresholds[1], by_min=False)
        boxes, scores = self.stage(pixels, boxes, self.onet, 48, self.thresholds[2], by_min=True)
        boxes = boxes / shrink
        return [Box(*b, score=s) for b, s in zip(boxes.tolist(), scores.tolist())]

    def propose(self, pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1: P-Net over the pyramid of normalised pixels (h, w, 3) -> squared candidate boxes
        (N, 4) in those pixels and their scores."""
        import cv2

        h, w = pixels.shape[:2]
        found_boxes, found_scores = [], []
        level = pixels
        for s in self.scales(h, w):  # each level is shrunk from the one before: area filter, ~3x less work
            level = cv2.resize(level, (math.ceil(w * s), math.ceil(h * s)), interpolation=cv2.INTER_AREA)  # (h_s, w_s, 3)
            x = torch.from_numpy(level).to(self.device).permute(2, 0, 1)[None]  # (1, 3, h_s, w_s)
            prob, offsets = self.pnet(x)  # (1, H', W'), (1, 4, H', W')
            ys, xs = torch.nonzero(prob[0] >= self.thresholds[0], as_tuple=True)
            if ys.numel() == 0:
                continue
            cells = torch.stack([xs, ys, xs, ys], dim=1).float() * 2  # (N, 4): window corners at stride 2
            cells[:, 2:] += 12
            boxes = cells / s  # (N, 4) in image pixels
            scores = prob[0, ys, xs]  # (N,)
            keep = nms(boxes, scores, 0.5)
            found_boxes.append(refine(boxes[keep], offsets[0, :, ys[keep], xs[keep]].T))
            found_scores.append(scores[keep])
        if not found_boxes:
            return torch.zeros((0, 4), device=self.device), torch.zeros((0,), device=self.device)
        boxes, scores = torch.cat(found_boxes), torch.cat(found_scores)
        keep = nms(boxes, scores, 0.7)
        return square(boxes[keep]), scores[keep]

    def stage(self, pixels: np.ndarray, boxes: torch.Tensor, net: nn.Module, size: int, threshold: float,
              by_min: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 2 and 3: rescore crops of the boxes, keep the confident ones, refine, suppress."""
        if boxes.shape[0] == 0:
            return boxes, boxes.new_zeros((0,))
        prob, offsets = net(crops(pixels, boxes, size))  # (N,), (N, 4)
        mask = prob >= threshold
        boxes, prob = refine(boxes[mask], offsets[mask]), prob[mask]
        keep = nms(boxes, prob, 0.7, by_min=by_min)
        boxes, prob = boxes[keep], prob[keep]
        return (boxes if by_min else square(boxes)), prob
