"""Loaders of the six formats on tiny synthetic sets, label mappings and the shared pipeline."""
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets import (DATASET_INFO, DatasetError, build_dataset, get_dataset_info, normalize_ignore_index)
from datasets.synthetic import generate
from datasets.transforms import MEAN_BGR, apply_draws, rescale, train_transform

FORMATS = ["cityscapes", "voc", "ade20k", "camvid", "coco_stuff", "pascal_context"]
CROP = (48, 40)

# Independent statements of each dataset's convention: raw label value -> train id (-1 ignore).
CITYSCAPES_ID_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                          25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
COCO_UNUSED = [11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90]


def expected_train_ids(fmt, raw):
    raw = raw.astype(np.int64)
    if fmt == "cityscapes":
        out = np.full(raw.shape, -1, np.int64)
        for label_id, train_id in CITYSCAPES_ID_TO_TRAIN.items():
            out[raw == label_id] = train_id
        return out
    if fmt == "voc":
        return np.where(raw == 255, -1, raw)
    if fmt == "camvid":
        return np.where(raw == 11, -1, raw)
    if fmt in ("ade20k", "pascal_context"):
        return raw - 1
    if fmt == "coco_stuff":  # CIRKD convention: the raw ids are the classes
        return np.where(raw == 255, -1, raw)
    used = [v for v in range(182) if v not in COCO_UNUSED]   # coco_stuff_171 (mmseg)
    out = np.full(raw.shape, -1, np.int64)
    for train_id, value in enumerate(used):
        out[raw == value] = train_id
    return out


@pytest.fixture(scope="module")
def synthetic_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("synthetic")
    return {fmt: generate(fmt, str(base / fmt), num_train=2, num_val=1, size=(64, 128), seed=3) for fmt in FORMATS}


def test_dataset_info_table():
    names = {"citys", "cityscapes", "voc", "pascal_voc", "ade20k", "camvid", "coco_stuff_164k", "coco_stuff",
             "pascal_context"}
    assert names <= set(DATASET_INFO)
    expected = {"citys": 19, "voc": 21, "ade20k": 150, "camvid": 11, "coco_stuff_164k": 182, "coco_stuff_171": 171,
                "pascal_context": 59}
    for name, num_classes in expected.items():
        info = get_dataset_info(name)
        assert info.name == name and info.num_classes == num_classes
        assert len(info.class_names) == num_classes and len(set(info.class_names)) == num_classes
        assert info.palette.shape == (num_classes, 3) and info.palette.dtype == np.uint8
        assert len(info.default_crop) == 2
    assert get_dataset_info("cityscapes") is get_dataset_info("citys")
    assert get_dataset_info("coco_stuff").name == "coco_stuff_164k"


def test_coco_stuff_171_mapping(synthetic_roots):
    summary = synthetic_roots["coco_stuff"]
    ds = build_dataset("coco_stuff_171", summary["root"], split="val", mode="val")
    raw = np.array(Image.open(ds.samples[0].label))
    np.testing.assert_array_equal(ds[0][1].numpy(), expected_train_ids("coco_stuff_171", raw))
    assert ds.num_classes == 171
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset_info("kitti")


def test_normalize_ignore_index():
    assert normalize_ignore_index(255) == -1
    assert normalize_ignore_index(-1) == -1
    with pytest.raises(ValueError):
        normalize_ignore_index(0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_val_loading_and_label_mapping(synthetic_roots, fmt):
    summary = synthetic_roots[fmt]
    ds = build_dataset(summary["dataset"], summary["root"], split="val", mode="val")
    assert len(ds) == 1
    image, label, name = ds[0]
    assert isinstance(name, str) and name
    assert image.dtype == torch.float32 and image.shape == (3, 64, 128)
    assert label.dtype == torch.int64 and label.shape == (64, 128)
    sample = ds.samples[0]
    raw_image = cv2.imread(sample.image, cv2.IMREAD_COLOR).astype(np.float32)
    np.testing.assert_allclose(image.numpy(), (raw_image - MEAN_BGR).transpose(2, 0, 1), atol=1e-4)
    raw = np.array(Image.open(sample.label))
    np.testing.assert_array_equal(label.numpy(), expected_train_ids(fmt, raw))
    values = label.unique()
    assert values.min() >= -1 and values.max() < ds.num_classes
    assert (values >= 0).sum() >= 3                      # a scene, not a blank image
    # tuple keys are accepted in val mode too (the seed is irrelevant there)
    assert torch.equal(ds[(0, 123)][1], label)


def test_cityscapes_void_ids_are_ignored(synthetic_roots):
    summary = synthetic_roots["cityscapes"]
    ds = build_dataset("cityscapes", summary["root"], split="train", mode="val")
    raws = [np.array(Image.open(s.label)) for s in ds.samples]
    labels = [ds[i][1].numpy() for i in range(len(ds))]
    for raw, label in zip(raws, labels):
        assert ((label == -1) == ~np.isin(raw, list(CITYSCAPES_ID_TO_TRAIN))).all()
        road = raw == 7
        assert road.any() and (label[road] == 0).all()
    assert any(np.isin(raw, [0, 1, 2, 3, 4, 5, 6, 9, 10]).any() for raw in raws)   # real void ids present


def test_voc_void_band_and_palette_val_labels(synthetic_roots):
    root = synthetic_roots["voc"]["root"]
    ds = build_dataset("voc", root, split="val", mode="val")
    assert ds.samples[0].label.endswith(os.path.join("SegmentationClass", "2008_000000.png"))
    assert Image.open(ds.samples[0].label).mode == "P"
    aug = np.array(Image.open(os.path.join(root, "SegmentationClassAug", "2008_000000.png"))).astype(np.int64)
    np.testing.assert_array_equal(ds[0][1].numpy(), np.where(aug == 255, -1, aug))
    assert (aug == 255).any()


@pytest.mark.parametrize("fmt", FORMATS)
def test_train_mode_shapes_and_seeded_draws(synthetic_roots, fmt):
    summary = synthetic_roots[fmt]
    ds = build_dataset(summary["dataset"], summary["root"], split="train", mode="train", crop_size=CROP)
    assert len(ds) == 2
    image, label, name = ds[(1, 11)]
    assert image.shape == (3,) + CROP and image.dtype == torch.float32
    assert label.shape == CROP and label.dtype == torch.int64
    assert label.min() >= -1 and label.max() < ds.num_classes
    again = ds[(1, 11)]
    assert torch.equal(again[0], image) and torch.equal(again[1], label) and again[2] == name
    outputs = [ds[(1, seed)][0] for seed in range(6)]
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])
    random_image, random_label, _ = ds[0]                  # int key: internal generator
    assert random_image.shape == (3,) + CROP and random_label.shape == CROP


def test_train_sample_equals_explicit_draws(synthetic_roots):
    summary = synthetic_roots["cityscapes"]
    ds = build_dataset("citys", summary["root"], split="train", mode="train", crop_size=CROP)
    image, label = ds.format.load_pair(ds.samples[0])
    for seed in range(5):
        rng = np.random.default_rng(seed)
        scale = 0.5 + int(rng.integers(0, 16)) / 10.0
        scaled_h, scaled_w = rescale(image, label, scale)[1].shape
        top = int(rng.integers(0, max(scaled_h, CROP[0]) - CROP[0] + 1))
        left = int(rng.integers(0, max(scaled_w, CROP[1]) - CROP[1] + 1))
        flip = bool(rng.integers(0, 2))
        want_image, want_label = apply_draws(image, label, CROP, scale, (top, left), flip)
        got_image, got_label, _ = ds[(0, seed)]
        np.testing.assert_array_equal(got_image.numpy(), want_image)
        np.testing.assert_array_equal(got_label.numpy(), want_label)


def toy_pair(height=6, width=8):
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = (np.stack([rows, cols, np.full_like(rows, 7)], -1) * 10).astype(np.uint8)  # row*10, col*10, 70
    label = (np.arange(height)[:, None] * 10 + np.arange(width)[None, :]).astype(np.int32)
    return image, label


def test_apply_draws_crop_and_flip():
    image, label = toy_pair()
    out_image, out_label = apply_draws(image, label, (3, 4), 1.0, (2, 1), False)
    np.testing.assert_array_equal(out_label, label[2:5, 1:5])
    np.testing.assert_allclose(out_image, (image[2:5, 1:5].astype(np.float32) - MEAN_BGR).transpose(2, 0, 1))
    flipped_image, flipped_label = apply_draws(image, label, (3, 4), 1.0, (2, 1), True)
    np.testing.assert_array_equal(flipped_label, label[2:5, 1:5][:, ::-1])
    np.testing.assert_allclose(flipped_image, out_image[:, :, ::-1])
    assert out_label.dtype == np.int64 and out_image.dtype == np.float32
    with pytest.raises(ValueError, match="crop offset"):
        apply_draws(image, label, (3, 4), 1.0, (4, 0), False)


def test_apply_draws_scale_nearest_label_and_padding():
    image, label = toy_pair(4, 4)
    _, doubled = apply_draws(image, label, (8, 8), 2.0, (0, 0), False)
    np.testing.assert_array_equal(doubled, np.repeat(np.repeat(label, 2, 0), 2, 1))
    halved_image, halved_label = rescale(image, label, 0.5)
    assert halved_label.shape == (2, 2) and halved_image.shape == (2, 2, 3)
    # crop larger than the scaled image: bottom/right padding, image 0 (mean colour), label -1
    padded_image, padded_label = apply_draws(image, label, (6, 7), 1.0, (0, 0), False)
    assert padded_label.shape == (6, 7)
    np.testing.assert_array_equal(padded_label[:4, :4], label)
    assert (padded_label[4:, :] == -1).all() and (padded_label[:, 4:] == -1).all()
    assert (padded_image[:, 4:, :] == 0).all() and (padded_image[:, :, 4:] == 0).all()


def test_train_transform_draw_order():
    image, label = toy_pair(30, 40)
    out = train_transform(image, label, (20, 20), np.random.default_rng(4))
    rng = np.random.default_rng(4)
    scale = 0.5 + int(rng.integers(0, 16)) / 10.0
    height, width = rescale(image, label, scale)[1].shape
    top = int(rng.integers(0, max(height, 20) - 20 + 1))
    left = int(rng.integers(0, max(width, 20) - 20 + 1))
    want = apply_draws(image, label, (20, 20), scale, (top, left), bool(rng.integers(0, 2)))
    np.testing.assert_array_equal(out[0], want[0])
    np.testing.assert_array_equal(out[1], want[1])


def test_scales_cover_cirkd_set():
    image, label = toy_pair(10, 10)
    rng = np.random.default_rng(0)
    sizes = {rescale(image, label, 0.5 + int(rng.integers(0, 16)) / 10.0)[1].shape[0] for _ in range(400)}
    assert sizes == {int(np.rint(10 * (0.5 + k / 10.0))) for k in range(16)}


def test_cityscapes_trainids_files_refused(synthetic_roots, tmp_path):
    root = synthetic_roots["cityscapes"]["root"]
    ds = build_dataset("citys", root, split="train", mode="val")
    bad = tmp_path / "bad.lst"
    label = ds.samples[0].label
    train_ids = label.replace("_labelIds.png", "_labelTrainIds.png")
    Image.open(label).save(train_ids)
    try:
        bad.write_text("%s\t%s\n" % (ds.samples[0].image, train_ids))
        with pytest.raises(DatasetError, match="trainIds"):
            build_dataset("citys", root, split="train", mode="val", list_file=str(bad))[0]
    finally:
        os.remove(train_ids)
