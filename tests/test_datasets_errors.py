"""Bad data: every case gives a one-line DatasetError naming the file, or is skipped and counted."""
import os

import cv2
import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from datasets import DatasetError, build_dataset, collate
from datasets.synthetic import generate


@pytest.fixture
def citys(tmp_path):
    summary = generate("cityscapes", str(tmp_path / "cs"), num_train=3, num_val=1, size=(40, 64), seed=0)
    return summary["root"]


def train_set(root, **kwargs):
    return build_dataset("citys", root, split="train", mode="train", crop_size=(32, 32), **kwargs)


def raises_one_line(fn, match):
    with pytest.raises(DatasetError, match=match) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    missing = str(tmp_path / "nowhere")
    message = raises_one_line(lambda: train_set(missing), "does not exist")
    assert missing in message and "data/README.md" in message


def test_missing_list_file(citys, tmp_path):
    missing = str(tmp_path / "train_missing.lst")
    assert missing in raises_one_line(lambda: train_set(citys, list_file=missing), "list file")
    os.makedirs(tmp_path / "voc")       # VOC needs its ImageSets list
    raises_one_line(lambda: build_dataset("voc", str(tmp_path / "voc")), "ImageSets/Segmentation/train_aug.txt")


def test_missing_image(citys):
    ds = train_set(citys)
    os.remove(ds.samples[0].image)
    message = raises_one_line(lambda: ds[(0, 0)], "missing")
    assert ds.samples[0].image in message


def test_corrupt_image(citys):
    ds = train_set(citys)
    with open(ds.samples[1].image, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\nthis is not a png")
    assert ds.samples[1].image in raises_one_line(lambda: ds[(1, 0)], "damaged .*IEND")
    with open(ds.samples[1].image, "wb") as handle:
        handle.write(b"neither png nor jpeg")
    assert ds.samples[1].image in raises_one_line(lambda: ds[(1, 0)], "cannot be decoded")


def test_corrupt_label(citys):
    ds = train_set(citys)
    with open(ds.samples[0].label, "wb") as handle:
        handle.write(b"garbage")
    assert ds.samples[0].label in raises_one_line(lambda: ds[(0, 0)], "cannot be decoded")


def test_colour_label_refused(citys):
    ds = train_set(citys)
    colour = np.zeros((40, 64, 3), np.uint8)
    Image.fromarray(colour).save(ds.samples[0].label)
    raises_one_line(lambda: ds[(0, 0)], "single-channel")


def test_label_value_outside_class_set(citys):
    ds = train_set(citys)
    label = np.array(Image.open(ds.samples[2].label))
    label[3, 5] = 200                                     # Cityscapes label ids stop at 33
    cv2.imwrite(ds.samples[2].label, label)
    message = raises_one_line(lambda: ds[(2, 0)], "outside")
    assert "200" in message and ds.samples[2].label in message
    ade_root = generate("ade20k", os.path.join(os.path.dirname(citys), "ade"), 1, 0, (40, 64), 0)["root"]
    ade = build_dataset("ade20k", ade_root, mode="val")
    label = np.array(Image.open(ade.samples[0].label))
    label[0, 0] = 151                                     # ADE20K has values 0..150
    cv2.imwrite(ade.samples[0].label, label)
    raises_one_line(lambda: ade[0], "151")


def test_image_label_size_mismatch(citys):
    ds = train_set(citys)
    label = np.array(Image.open(ds.samples[0].label))
    cv2.imwrite(ds.samples[0].label, label[:-4])
    message = raises_one_line(lambda: ds[(0, 0)], "does not match")
    assert "40x64" in message and "36x64" in message


def test_empty_list(citys, tmp_path):
    empty = tmp_path / "empty.lst"
    empty.write_text("\n")
    raises_one_line(lambda: train_set(citys, list_file=str(empty)), "no citys")


def test_skip_replaces_and_counts(citys):
    ds = train_set(citys, on_bad_sample="skip")
    os.remove(ds.samples[0].image)
    image, label, name = ds[(0, 5)]                       # replaced by the next index, same draws
    assert name == ds.samples[1].name and ds.skipped == 1
    reference = train_set(citys)
    assert (reference[(1, 5)][1] == label).all()
    assert ds[(1, 5)][2] == ds.samples[1].name and ds.skipped == 1
    # skips made inside DataLoader worker processes are counted too
    loader = DataLoader(ds, batch_size=2, sampler=[(0, 1), (2, 2)], num_workers=1, collate_fn=collate)
    names = [n for _, _, batch_names in loader for n in batch_names]
    assert names == [ds.samples[1].name, ds.samples[2].name]
    assert ds.skipped == 2


def test_skip_leaves_bad_validation_images_out_and_does_not_loop_forever(citys):
    val = build_dataset("citys", citys, split="train", mode="val", on_bad_sample="skip")
    os.remove(val.samples[0].image)
    assert val[0] is None and val.skipped == 1            # left out, never replaced by another image
    assert val[1][2] == val.samples[1].name
    assert collate([None]) is None and len(collate([None, val[1]])[2]) == 1
    strict = build_dataset("citys", citys, split="train", mode="val")
    raises_one_line(lambda: strict[0], "missing")
    ds = train_set(citys, on_bad_sample="skip")
    for sample in ds.samples[1:]:
        os.remove(sample.image)
    raises_one_line(lambda: ds[(0, 0)], "every sample")
    assert ds.skipped == len(ds)
