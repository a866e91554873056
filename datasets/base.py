"""What every dataset format shares: errors, class metadata, file reading, the Dataset class.

A format (one file per dataset) only knows two things: where its image/label pairs are
(``list_samples``) and how raw label values become train ids (a 256-entry lookup table,
``label_lut``). Everything else (reading, checks, the augmentation pipeline, bad-sample
handling) lives here and in ``transforms.py``, so all datasets behave identically.

Label convention inside the framework: class ids ``0..K-1`` and ignore ``-1`` (``IGNORE_INDEX``).
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .pipelines import Pipeline, build_pipeline
from .transforms import IGNORE_INDEX

INVALID = -2            # lookup-table marker: this raw label value must not occur
LOGGER = logging.getLogger("segkd.datasets")


class DatasetError(ValueError):
    """A dataset root, list file, image or label is missing or wrong; the message says which and what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    class_names: List[str]
    palette: np.ndarray              # (num_classes, 3) uint8 RGB
    default_crop: Tuple[int, int]    # (H, W)
    default_root: str = ""
    aliases: Tuple[str, ...] = field(default_factory=tuple)
    train_id_to_label_id: Optional[Tuple[int, ...]] = None   # Cityscapes test-server export
    mmseg_img_scale: Tuple[int, int] = (2048, 512)           # (W, H): mmseg's img_scale for this dataset


@dataclass(frozen=True)
class Sample:
    image: str                       # absolute or root-joined path
    label: str
    name: str                        # image file stem, e.g. "aachen_000000_000019_leftImg8bit"


def bit_palette(num_classes: int) -> np.ndarray:
    """The Pascal VOC colour map (bit-interleaved RGB), (num_classes, 3) uint8."""
    palette = np.zeros((num_classes, 3), np.uint8)
    for index in range(num_classes):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


def make_lut(mapping: dict, ignore_values: Sequence[int] = ()) -> np.ndarray:
    """256-entry table raw value -> train id; ``ignore_values`` -> -1; everything else INVALID."""
    lut = np.full(256, INVALID, np.int32)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    for raw in ignore_values:
        lut[raw] = IGNORE_INDEX
    return lut


def read_list_file(path: str) -> List[List[str]]:
    """Non-empty lines split on whitespace (CIRKD lists mix tabs and spaces)."""
    if not os.path.isfile(path):
        raise DatasetError("list file %s does not exist: prepare it as described in data/README.md "
                           "or pass the right list file" % path)
    with open(path) as handle:
        return [line.split() for line in handle if line.strip()]


def require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError("%s %s does not exist: download and unpack the dataset there "
                           "(layout in data/README.md) or pass the correct root" % (what, path))


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


JPEG_START, JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def truncation(head: bytes, tail: bytes) -> Optional[str]:
    """Why a JPEG/PNG whose first and last bytes are given is cut short, or None.

    Decoders fill a cut JPEG with grey and only warn, so the end markers are checked instead:
    a JPEG ends with FFD9 (trailing zero padding allowed), a PNG with its IEND chunk."""
    if head.startswith(JPEG_START) and not tail.rstrip(b"\x00\r\n\t ").endswith(JPEG_END):
        return "JPEG end marker (FFD9) missing: the file is truncated"
    if head.startswith(PNG_SIGNATURE) and b"IEND" not in tail[-32:]:
        return "PNG end chunk (IEND) missing: the file is truncated"
    return None


def _read_checked(path: str, what: str) -> bytes:
    if not os.path.isfile(path):
        raise DatasetError("%s %s is missing: re-download the dataset or fix the list file" % (what, path))
    with open(path, "rb") as handle:
        data = handle.read()
    problem = truncation(data[:16], data[-64:]) if data else "the file is empty"
    if problem:
        raise DatasetError("%s %s is damaged (%s): replace the file, or use --on-bad-sample skip"
                           % (what, path, problem))
    return data


def read_image(path: str) -> np.ndarray:
    """BGR uint8 (H, W, 3) via cv2; missing, truncated or undecodable files are a DatasetError."""
    data = _read_checked(path, "image")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise DatasetError("image %s cannot be decoded (corrupt or not an image): replace the file "
                           "or use --on-bad-sample skip" % path)
    return image


def read_label(path: str) -> np.ndarray:
    """Single-channel label ids (palette indices for 'P' PNGs) as an integer array."""
    data = _read_checked(path, "label")
    try:
        with Image.open(io.BytesIO(data)) as handle:
            mode = handle.mode
            label = np.array(handle)
    except (OSError, ValueError, SyntaxError) as err:
        raise DatasetError("label %s cannot be decoded (%s): replace the file or use "
                           "on_bad_sample='skip'" % (path, str(err).splitlines()[0] if str(err) else type(err).__name__))
    if label.ndim != 2 or mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise DatasetError("label %s is a %s image; expected a single-channel PNG of class ids "
                           "(not a colour visualisation)" % (path, mode))
    return label


def map_label(raw: np.ndarray, lut: np.ndarray, path: str, dataset: str) -> np.ndarray:
    """Apply a format's lookup table; raise on values outside the dataset's raw id set."""
    if raw.dtype != np.uint8:
        if raw.size and (raw.min() < 0 or raw.max() > 255):
            bad = np.unique(raw[(raw < 0) | (raw > 255)])[:5].tolist()
            raise DatasetError("label %s has values %s outside 0..255, not valid for %s: check the "
                               "label files (see data/README.md)" % (path, bad, dataset))
        raw = raw.astype(np.uint8)
    label = lut[raw]
    if (label == INVALID).any():
        bad = np.unique(raw[label == INVALID])[:8].tolist()
        valid = np.flatnonzero(lut != INVALID)
        raise DatasetError("label %s has values %s outside the %s label set (valid raw values: %s): "
                           "wrong dataset or label type, see data/README.md"
                           % (path, bad, dataset, _ranges(valid)))
    return label


def _ranges(values: np.ndarray) -> str:
    parts, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            parts.append(str(start) if start == v else "%d-%d" % (start, v))
            start = None
    return ",".join(parts)


class DatasetFormat:
    """One dataset's file layout and label mapping; subclasses set ``info`` and ``label_lut``."""
    info: DatasetInfo
    label_lut: np.ndarray

    def list_samples(self, root: str, split: str, list_file: Optional[str]) -> List[Sample]:
        raise TypeError("%s must implement list_samples" % type(self).__name__)

    def check_label_path(self, path: str) -> None:
        """Hook for format-specific label-file mistakes (e.g. Cityscapes trainIds files)."""

    def load_image_only(self, sample: Sample) -> Tuple[np.ndarray, np.ndarray]:
        """An unlabeled sample: the image and an all-ignore label (the label file is not read)."""
        image = read_image(sample.image)
        return image, np.full(image.shape[:2], IGNORE_INDEX, np.int32)

    def load_pair(self, sample: Sample) -> Tuple[np.ndarray, np.ndarray]:
        """Read one sample: BGR uint8 image and int32 train-id label with -1 ignore."""
        self.check_label_path(sample.label)
        image = read_image(sample.image)
        raw = read_label(sample.label)
        if raw.shape != image.shape[:2]:
            raise DatasetError("image %s is %dx%d but its label %s is %dx%d: the pair does not match, "
                               "fix the list file or the files" % (sample.image, image.shape[0], image.shape[1],
                                                                   sample.label, raw.shape[0], raw.shape[1]))
        return image, map_label(raw, self.label_lut, sample.label, self.info.name)


Key = Union[int, Tuple[int, int]]


class SegmentationDataset(Dataset):
    """Image/label pairs of one format run through the shared pipeline.

    ``dataset[i]`` (train mode) draws augmentation from a per-process generator;
    ``dataset[(i, seed)]`` draws everything from ``numpy.random.default_rng(seed)``.
    Returns ``(image FloatTensor 3xHxW, label LongTensor HxW with -1 ignore, name)``;
    ``with_labels=False`` (unlabeled streams) never reads label files and returns all -1 labels.
    ``pipeline`` (``datasets.pipelines``) does the augmentation; CIRKD's by default. ``label_fn``
    maps a raw label file to train ids instead of the format's table (class-incremental masking).
    """

    def __init__(self, fmt: DatasetFormat, root: str, split: str = "train", mode: str = "train",
                 crop_size: Optional[Sequence[int]] = None, list_file: Optional[str] = None,
                 on_bad_sample: str = "raise", with_labels: bool = True,
                 pipeline: Optional[Pipeline] = None,
                 label_fn: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> None:
        if split not in ("train", "val"):
            raise ValueError("split must be 'train' or 'val', got %r" % (split,))
        if mode not in ("train", "val"):
            raise ValueError("mode must be 'train' or 'val', got %r" % (mode,))
        if on_bad_sample not in ("raise", "skip"):
            raise ValueError("on_bad_sample must be 'raise' or 'skip', got %r" % (on_bad_sample,))
        self.format = fmt
        self.info = fmt.info
        self.root = root
        self.split = split
        self.mode = mode
        crop = tuple(int(v) for v in (crop_size if crop_size is not None else fmt.info.default_crop))
        if len(crop) != 2 or min(crop) <= 0:
            raise ValueError("crop_size must be (H, W) with positive entries, got %r" % (crop_size,))
        self.crop_size: Tuple[int, int] = crop  # type: ignore[assignment]
        self.on_bad_sample = on_bad_sample
        self.with_labels = bool(with_labels)
        self.pipeline: Pipeline = pipeline if pipeline is not None else build_pipeline("cirkd")
        self.label_fn = label_fn      # raw label -> train ids (-1 ignore), instead of the format's table
        require_dir(root, "%s dataset root" % fmt.info.name)
        self.samples: List[Sample] = fmt.list_samples(root, split, list_file)
        if not self.samples:
            raise DatasetError("no %s %s samples found under %s: check the layout (data/README.md)"
                               % (fmt.info.name, split, root))
        # Shared-memory counter so skips made in DataLoader worker processes are visible here.
        self._skip_counter = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._rng: Optional[np.random.Generator] = None
        self._rng_pid = -1

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def skipped(self) -> int:
        """How many bad samples were replaced so far (all worker processes together)."""
        return int(self._skip_counter.item())

    def __len__(self) -> int:
        return len(self.samples)

    def _process_rng(self) -> np.random.Generator:
        # One generator per process: forked DataLoader workers must not replay the same draws.
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng = np.random.default_rng([torch.initial_seed() % (2 ** 63), os.getpid()])
            self._rng_pid = os.getpid()
        return self._rng

    def load(self, index: int, seed: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor, str]:
        sample = self.samples[index]
        if not self.with_labels:
            image, label = self.format.load_image_only(sample)
        elif self.label_fn is not None:
            image, raw = read_image(sample.image), read_label(sample.label)
            if raw.shape != image.shape[:2]:
                raise DatasetError("image %s is %dx%d but its label %s is %dx%d: the pair does not match"
                                   % (sample.image, image.shape[0], image.shape[1], sample.label, *raw.shape))
            label = self.label_fn(raw)
        else:
            image, label = self.format.load_pair(sample)
        if self.mode == "train":
            rng = np.random.default_rng(seed) if seed is not None else self._process_rng()
            image, label = self.pipeline.train(image, label, self.crop_size, rng)
        else:
            image, label = self.pipeline.val(image, label)
        return torch.from_numpy(image), torch.from_numpy(label), sample.name

    def __getitem__(self, key: Key) -> Optional[Tuple[torch.Tensor, torch.Tensor, str]]:
        if isinstance(key, (tuple, list)):
            index, seed = int(key[0]), int(key[1])
        else:
            index, seed = int(key), None
        if not 0 <= index < len(self.samples):
            raise IndexError("sample index %d out of range 0..%d" % (index, len(self.samples) - 1))
        if self.on_bad_sample == "raise":
            return self.load(index, seed)
        if self.mode != "train":
            # Validation: a bad image is left out (counted) rather than replaced, so no image is
            # scored twice; the collate function drops the None.
            try:
                return self.load(index, seed)
            except DatasetError as err:
                self._skip_counter += 1
                LOGGER.warning("skipping bad validation sample: %s", err)
                return None
        for attempt in range(len(self.samples)):
            candidate = (index + attempt) % len(self.samples)
            try:
                return self.load(candidate, seed)
            except DatasetError as err:
                self._skip_counter += 1
                LOGGER.warning("skipping bad sample: %s", err)
        raise DatasetError("every sample of %s (%s) is bad; run tools/check_dataset.py %s %s"
                           % (self.info.name, self.root, self.info.name, self.root))


def data_error_line(exc: BaseException) -> str:
    """The one-line message of a DatasetError, also when a DataLoader worker re-raised it."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        return last.split("Error: ", 1)[-1] if "Error: " in last else last
    return text.splitlines()[0] if text else type(exc).__name__


def scan_pairs(image_dir: str, label_dir: str, image_exts: Tuple[str, ...], label_name: Callable[[str], str]
               ) -> List[Sample]:
    """Sorted directory scan: every image file in ``image_dir`` with its label path (may be missing)."""
    require_dir(image_dir, "image folder")
    samples = []
    for filename in sorted(os.listdir(image_dir)):
        if filename.lower().endswith(image_exts):
            samples.append(Sample(os.path.join(image_dir, filename),
                                  os.path.join(label_dir, label_name(filename)), stem(filename)))
    return samples


def samples_from_list(root: str, rows: List[List[str]], list_path: str,
                      from_id: Optional[Callable[[str], Tuple[str, str]]]) -> List[Sample]:
    """List rows -> samples: 'image label' pairs (paths relative to root) or single ids via ``from_id``."""
    samples = []
    for number, row in enumerate(rows, 1):
        if len(row) == 2:
            image, label = row
        elif len(row) == 1 and from_id is not None:
            image, label = from_id(row[0])
        else:
            raise DatasetError("list file %s line %d has %d fields; expected %s" % (
                list_path, number, len(row), "'image<TAB>label'" if from_id is None else "one id or an image/label pair"))
        samples.append(Sample(os.path.join(root, image), os.path.join(root, label), stem(image)))
    return samples


def resolve_list(root: str, list_file: Optional[str], candidates: Sequence[str]) -> Optional[str]:
    """The explicit list file (must exist), else the first existing default under root, else None."""
    if list_file is not None:
        for path in (list_file, os.path.join(root, list_file)):
            if os.path.isfile(path):
                return path
        raise DatasetError("list file %s does not exist (nor under %s): pass an existing list file or "
                           "omit it to use the default (data/README.md)" % (list_file, root))
    for candidate in candidates:
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    return None
