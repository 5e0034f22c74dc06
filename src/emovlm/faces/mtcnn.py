"""MTCNN face detector (Zhang et al. 2016): image pyramid → P-Net → R-Net → O-Net with landmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import torch

from emovlm.faces.base import Face, check_rgb_image
from emovlm.faces.boxes import grouped_nms, square
from emovlm.faces.mtcnn_nets import load_mtcnn_nets

_CELL = 12  # P-Net's window in pixels of the scaled image
_STRIDE = 2  # P-Net's output stride


@dataclass(frozen=True)
class _Candidates:
    """Boxes under consideration, with the image each belongs to and its latest score."""

    image: np.ndarray  # (N,) index into the batch
    boxes: np.ndarray  # (N, 4) float64
    scores: np.ndarray  # (N,)

    def take(self, index: np.ndarray) -> _Candidates:
        """The candidates at `index` (a boolean mask or integer indices)."""
        return _Candidates(self.image[index], self.boxes[index], self.scores[index])

    def snapped(self) -> _Candidates:
        """Boxes rounded to whole pixels, without those narrower than one pixel."""
        rounded = replace(self, boxes=np.round(self.boxes))
        return rounded.take(rounded.boxes[:, 2] - rounded.boxes[:, 0] >= 1)


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each box edge by its offset times the box's width (x) or height (y)."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    return boxes + offsets * size


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array on the CPU."""
    return tensor.cpu().numpy().astype(np.float64)


def grouped_nms_torch(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """`grouped_nms` (IoU) on tensors, on their device: indices kept, by group, best first.

    Exact greedy suppression, run for every group at once: each round keeps the best remaining
    box of each group and drops the boxes of its group that overlap it more than `threshold`,
    so there are as many rounds as the most boxes any one group keeps.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    boxes, groups = boxes[order].double(), groups[order]
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    remaining = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    kept = [torch.zeros(0, dtype=torch.long, device=boxes.device)]
    while True:
        alive = remaining.nonzero().squeeze(1)
        if not len(alive):
            break
        first = torch.ones_like(alive, dtype=torch.bool)
        first[1:] = groups[alive[1:]] != groups[alive[:-1]]
        best = alive[first]
        kept.append(best)
        rival = best[torch.cumsum(first, 0) - 1]
        low = torch.maximum(boxes[alive, :2], boxes[rival, :2])
        high = torch.minimum(boxes[alive, 2:], boxes[rival, 2:])
        inter = (high - low).clamp(min=0).prod(dim=1)
        overlap = inter / (areas[alive] + areas[rival] - inter).clamp(min=1e-12)
        remaining[alive[overlap > threshold]] = False
        remaining[best] = False
    kept_sorted = torch.cat(kept)
    return order[kept_sorted[torch.argsort(kept_sorted)]]


def _grouped_nms_on_device(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float
) -> torch.Tensor:
    """`grouped_nms_torch` where the tensors live; on the CPU NumPy's loop (same boxes kept).

    P-Net leaves a few dozen boxes per image and scale: on the CPU, NumPy's suppression costs
    a tenth of the many small torch operations.
    """
    if boxes.device.type != "cpu":
        return grouped_nms_torch(boxes, scores, groups, threshold)
    keep = grouped_nms(boxes.double().numpy(), scores.double().numpy(), groups.numpy(), threshold)
    return torch.from_numpy(keep)


def _in_sized_batch(net: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`net`'s outputs for `batch`, run padded with zero rows to the next power of two.

    oneDNN builds kernels for each new input shape, and R-Net and O-Net see a different
    number of candidates on every call; a few batch sizes let the kernels be reused.
    """
    size = 1 << max(0, len(batch) - 1).bit_length()
    padding = batch.new_zeros((size - len(batch), *batch.shape[1:]))
    padded = torch.cat([batch, padding]).contiguous(memory_format=torch.channels_last)
    return tuple(output[: len(batch)] for output in net(padded))


def _normalise(batch: torch.Tensor, device: str) -> torch.Tensor:
    """(N, 3, H, W) RGB values in [0, 255] → channels-last floats in [-1, 1) on `device`."""
    batch = batch.to(device).float().contiguous(memory_format=torch.channels_last)
    return (batch - 127.5) * 0.0078125


def _window_edges(
    start: np.ndarray, length: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """First and past-the-end pixel of each of `size` area-averaging windows along one axis."""
    step = np.arange(size)
    first = start[:, None] + (step * length[:, None]) // size
    past = start[:, None] - (-(step + 1) * length[:, None] // size)
    return first, past


def _area_crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size, 3) area-averaged resamplings of integer boxes, zero outside the image.

    Output pixel i of a side of length L averages input pixels floor(i·L/size) to
    ceil((i+1)·L/size), like torch's "area" interpolation that facenet-pytorch uses for these
    weights (OpenCV's INTER_AREA weights pixels differently and shifts R-Net's scores enough to
    add false faces, e.g. on the astronaut's neck ring). Sums come from one integral image, so
    every crop of the image costs four gathers; the integral covers only the part of the image
    the boxes reach.
    """
    boxes = boxes.astype(np.int64)
    height, width = image.shape[:2]
    x0, y0 = max(0, int(boxes[:, 0].min())), max(0, int(boxes[:, 1].min()))
    x1, y1 = min(width, int(boxes[:, 2].max())), min(height, int(boxes[:, 3].max()))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((len(boxes), size, size, 3))
    image, boxes = image[y0:y1, x0:x1], boxes - (x0, y0, x0, y0)
    height, width = image.shape[:2]
    integral = cv2.integral(image, sdepth=cv2.CV_64F)
    top, bottom = _window_edges(boxes[:, 1], boxes[:, 3] - boxes[:, 1], size)
    left, right = _window_edges(boxes[:, 0], boxes[:, 2] - boxes[:, 0], size)
    area = ((bottom - top)[:, :, None] * (right - left)[:, None, :])[..., None]
    stride = width + 1
    top = np.clip(top, 0, height)[:, :, None] * stride
    bottom = np.clip(bottom, 0, height)[:, :, None] * stride
    left, right = np.clip(left, 0, width)[:, None, :], np.clip(right, 0, width)[:, None, :]
    flat = integral.reshape(-1, 3)
    sums = flat[bottom + right] - flat[top + right] - flat[bottom + left] + flat[top + left]
    return sums / area


Window = tuple[int, int, int, int]
"""An integer (x1, y1, x2, y2) region of an image, past-the-end on the right and bottom."""


def _region(image: np.ndarray, window: Window | None) -> Window:
    """`window` clipped to the image (the whole image for None); an empty one is an error."""
    height, width = image.shape[:2]
    if window is None:
        return (0, 0, width, height)
    x1, y1 = max(0, int(window[0])), max(0, int(window[1]))
    x2, y2 = min(width, int(window[2])), min(height, int(window[3]))
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"search window {window} lies outside the {width}x{height} image")
    return (x1, y1, x2, y2)


def _cut(image: np.ndarray, region: Window) -> np.ndarray:
    """The pixels of `region` (a view when it is the whole image)."""
    x1, y1, x2, y2 = region
    return image[y1:y2, x1:x2]


class MTCNNDetector:
    """MTCNN with facenet-pytorch 2.6.0's weights (MIT), written for batched CPU or GPU inference.

    `min_face_size` is the face side in pixels that the pyramid's finest scale maps onto
    P-Net's 12-pixel window: smaller is slower; it is a soft bound, since P-Net also fires on
    faces somewhat smaller than its window (e.g. 200 still finds some 130-pixel faces, 250 does
    not); `min_face_fraction` raises that bound to a share of each image's shorter side (0.1
    skips faces under a tenth of it: about 3x faster on 360p video, for when the main face is
    wanted); `thresholds` are the P-Net, R-Net and O-Net face-probability cut-offs; `factor`
    is the pyramid's scale step; `batch_size` bounds how many same-size images P-Net sees at
    once. Boxes are not clipped to the image, so a face cut by the border keeps its full extent.
    """

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = 20,
        min_face_fraction: float = 0.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        batch_size: int = 32,
    ) -> None:
        """Load the three networks onto `device`, fetching their weights on first use."""
        self.device = device
        self.min_face_size = min_face_size
        self.min_face_fraction = min_face_fraction
        self.thresholds = tuple(thresholds)
        self.factor = factor
        self.batch_size = batch_size
        self.pnet, self.rnet, self.onet = load_mtcnn_nets(device)

    searches_windows = True
    """`detect` can look for faces of a given size (`face_range`) in given regions (`windows`)."""

    def detect(
        self,
        images: Sequence[np.ndarray],
        face_range: tuple[float, float] | None = None,
        windows: Sequence[Window | None] | None = None,
    ) -> list[list[Face]]:
        """Faces in each RGB uint8 image, highest probability first.

        `face_range` (smallest, largest face side in pixels) keeps only the pyramid levels
        that look for faces of about that size: far less work when the face size is known.
        `windows` gives per image an integer (x1, y1, x2, y2) region, or None for all of it:
        P-Net then proposes only inside the region, at the scales it would use on the whole
        image; R-Net and O-Net read the whole image, and boxes are in image coordinates.
        """
        for image in images:
            check_rgb_image(image)
        if not images:
            return []
        images = [np.ascontiguousarray(image) for image in images]
        regions = [
            _region(image, None if windows is None else windows[i])
            for i, image in enumerate(images)
        ]
        with torch.inference_mode():
            candidates = self._propose(images, regions, face_range)
            candidates = self._refine(images, candidates)
            return self._finish(images, candidates)

    def _scales(
        self, height: int, width: int, face_range: tuple[float, float] | None = None
    ) -> list[float]:
        """Pyramid scales that map faces from `min_face_size` up to the whole image onto 12 px.

        With `face_range`, only the scales whose 12-pixel window is a face inside the range
        (the nearest one when none is).
        """
        first = _CELL / max(self.min_face_size, self.min_face_fraction * min(height, width))
        count = max(0, math.floor(math.log(_CELL / (min(height, width) * first), self.factor)) + 1)
        scales = [first * self.factor**k for k in range(count)]
        if face_range is None or not scales:
            return scales
        low, high = face_range
        inside = [scale for scale in scales if low <= _CELL / scale <= high]
        middle = math.sqrt(low * high)
        return inside or [min(scales, key=lambda scale: abs(math.log(_CELL / scale / middle)))]

    def _propose(
        self,
        images: list[np.ndarray],
        regions: list[Window],
        face_range: tuple[float, float] | None,
    ) -> _Candidates:
        """Stage 1: P-Net over the pyramid of every image's region, NMS per scale, then across scales.

        Images of one size with regions of one size go through each level together, and
        suppression runs in torch on the model's device; only the surviving proposals come
        back to the host, in image coordinates.
        """
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (image, (x1, y1, x2, y2)) in enumerate(zip(images, regions, strict=True)):
            groups.setdefault((*image.shape[:2], y2 - y1, x2 - x1), []).append(index)
        found = []
        for (height, width, rows, cols), indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                level = [_cut(images[i], regions[i]) for i in chunk]
                origins = torch.tensor([regions[i][:2] * 2 for i in chunk], dtype=torch.float64)
                for scale in self._scales(height, width, face_range):
                    size = (math.ceil(cols * scale), math.ceil(rows * scale))
                    if min(size) < _CELL:  # a region too small for P-Net's window at this scale
                        continue
                    # Each level is shrunk from the previous one: far less work than from full size.
                    level = [
                        cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in level
                    ]
                    found.append(self._pnet_at_scale(np.stack(level), chunk, scale, origins))
        if not found:
            return _Candidates(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))
        image_index, boxes, scores, offsets = (torch.cat(part) for part in zip(*found, strict=True))
        keep = _grouped_nms_on_device(boxes, scores, image_index, 0.7)
        boxes = boxes[keep]
        size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, dim=1)
        regressed = (boxes + offsets[keep] * size).cpu().numpy()
        return _Candidates(image_index[keep].cpu().numpy(), square(regressed), _numpy(scores[keep]))

    def _pnet_at_scale(
        self, resized: np.ndarray, indices: list[int], scale: float, origins: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """P-Net windows above threshold in regions already resized to `scale`, NMS per image.

        `origins` holds each region's (x1, y1, x1, y1), which moves its boxes into image
        coordinates. Returns (image index, box, score, offsets) tensors on the model's device.
        """
        pixels = torch.from_numpy(resized).permute(0, 3, 1, 2)
        probability, offsets = self.pnet(_normalise(pixels, self.device))
        hits = (probability >= self.thresholds[0]).nonzero()
        batch_pos, row, col = hits[:, 0], hits[:, 1], hits[:, 2]
        scores = probability[batch_pos, row, col].double()
        offsets = offsets[batch_pos, :, row, col].double()
        corner = torch.stack([col, row], dim=1).double() * _STRIDE
        boxes = torch.cat([corner, corner + _CELL], dim=1) / scale
        boxes = boxes + origins.to(boxes.device)[batch_pos]
        image_index = torch.as_tensor(indices, device=hits.device)[batch_pos]
        keep = _grouped_nms_on_device(boxes, scores, image_index, 0.5)
        return image_index[keep], boxes[keep], scores[keep], offsets[keep]

    def _crops(self, images: list[np.ndarray], candidates: _Candidates, size: int) -> torch.Tensor:
        """Every candidate's box cut from its image and resized to size×size, normalised."""
        patches = np.empty((len(candidates.scores), size, size, 3))
        for index in np.unique(candidates.image):
            mine = candidates.image == index
            patches[mine] = _area_crops(images[index], candidates.boxes[mine], size)
        return _normalise(torch.from_numpy(patches).permute(0, 3, 1, 2), self.device)

    def _refine(self, images: list[np.ndarray], candidates: _Candidates) -> _Candidates:
        """Stage 2: R-Net rescoring and box regression of the squared P-Net proposals."""
        candidates = candidates.snapped()
        if not len(candidates.scores):
            return candidates
        probability, offsets = _in_sized_batch(self.rnet, self._crops(images, candidates, 24))
        passed = probability.cpu().numpy() >= self.thresholds[1]
        candidates = replace(candidates.take(passed), scores=_numpy(probability)[passed])
        offsets = _numpy(offsets)[passed]
        keep = grouped_nms(candidates.boxes, candidates.scores, candidates.image, 0.7)
        boxes = square(_regress(candidates.boxes[keep], offsets[keep]))
        return replace(candidates.take(keep), boxes=boxes)

    def _finish(self, images: list[np.ndarray], candidates: _Candidates) -> list[list[Face]]:
        """Stage 3: O-Net rescoring, box regression and landmarks; final NMS by smaller area."""
        faces: list[list[Face]] = [[] for _ in images]
        candidates = candidates.snapped()
        if not len(candidates.scores):
            return faces
        probability, offsets, points = _in_sized_batch(
            self.onet, self._crops(images, candidates, 48)
        )
        passed = probability.cpu().numpy() >= self.thresholds[2]
        candidates = replace(candidates.take(passed), scores=_numpy(probability)[passed])
        offsets, points = _numpy(offsets)[passed], _numpy(points)[passed]
        # Landmarks are fractions of the box O-Net saw: five x values, then five y values.
        origin = candidates.boxes[:, None, :2]
        size = candidates.boxes[:, None, 2:] - origin
        landmarks = origin + np.stack([points[:, :5], points[:, 5:]], axis=2) * size
        boxes = _regress(candidates.boxes, offsets)
        for i in grouped_nms(boxes, candidates.scores, candidates.image, 0.7, mode="min"):
            faces[candidates.image[i]].append(
                Face(tuple(boxes[i]), candidates.scores[i], landmarks[i])
            )
        return faces
