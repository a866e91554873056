"""Synthetic generator (determinism, content, CLI) and tools/check_dataset.py."""
import os

import cv2
import numpy as np
from PIL import Image

from datasets.cityscapes import TRAIN_ID_TO_LABEL_ID, VOID_LABEL_IDS
from datasets.synthetic import generate, main as synthetic_main
from tools.check_dataset import main as check_main


def read_tree(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def test_deterministic_for_any_worker_count(tmp_path):
    one = generate("voc", str(tmp_path / "a"), 3, 2, (48, 64), seed=5, workers=1)
    two = generate("voc", str(tmp_path / "b"), 3, 2, (48, 64), seed=5, workers=2)
    assert one["num_train"] == 3 and two["dataset"] == "voc"
    assert read_tree(one["root"]) == read_tree(two["root"])
    other = generate("voc", str(tmp_path / "c"), 3, 2, (48, 64), seed=6)
    assert read_tree(other["root"]) != read_tree(one["root"])


def test_street_content_uses_real_cityscapes_ids(tmp_path):
    root = generate("cityscapes", str(tmp_path / "cs"), 6, 0, (128, 256), seed=0)["root"]
    values = set()
    for folder, _, names in os.walk(os.path.join(root, "gtFine")):
        for name in names:
            values |= set(np.unique(np.array(Image.open(os.path.join(folder, name)))).tolist())
    assert values <= set(range(34))
    assert len(values & set(TRAIN_ID_TO_LABEL_ID)) >= 15          # most of the 19 classes in 6 scenes
    assert values & set(VOID_LABEL_IDS)
    lines = open(os.path.join(root, "train.lst")).read().splitlines()
    assert len(lines) == 6 and all(len(line.split("\t")) == 2 for line in lines)
    image = cv2.imread(os.path.join(root, lines[0].split("\t")[0]))
    assert image.shape == (128, 256, 3) and image.std() > 10


def test_voc_void_band_surrounds_objects(tmp_path):
    root = generate("voc", str(tmp_path / "voc"), 2, 0, (96, 128), seed=1)["root"]
    ids = open(os.path.join(root, "ImageSets", "Segmentation", "train_aug.txt")).read().split()
    label = np.array(Image.open(os.path.join(root, "SegmentationClassAug", ids[0] + ".png")))
    objects = (label != 0) & (label != 255)
    assert objects.any() and (label == 255).any()
    grown = cv2.dilate(objects.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert (grown & (label == 255)).any()
    background = cv2.dilate((label == 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (background & objects).any()                       # objects never touch background directly


def test_cli(tmp_path, capsys):
    out = str(tmp_path / "ade")
    assert synthetic_main(["--format", "ade20k", "--out", out, "--num-train", "1", "--num-val", "1",
                           "--size", "32", "48", "--seed", "2", "--workers", "1"]) == 0
    assert "--dataset ade20k" in capsys.readouterr().out
    assert os.path.isfile(os.path.join(out, "images", "validation", "ADE_val_00000001.jpg"))


def test_check_dataset_reports_problems(tmp_path, capsys):
    root = generate("camvid", str(tmp_path / "camvid"), 3, 1, (40, 48), seed=0)["root"]
    assert check_main(["camvid", root]) == 0
    assert "OK" in capsys.readouterr().out
    label_path = os.path.join(root, "trainannot", "0001TP_000001.png")
    label = np.array(Image.open(label_path))
    label[0, :3] = 40                                            # CamVid ids are 0..11
    cv2.imwrite(label_path, label)
    os.remove(os.path.join(root, "train", "0001TP_000002.png"))
    cv2.imwrite(os.path.join(root, "valannot", "Seq05VD_000000.png"), np.zeros((10, 10), np.uint8))
    assert check_main(["camvid", root]) == 1
    report = capsys.readouterr().out
    assert label_path in report and "40" in report
    assert "missing image" in report and "size mismatch" in report and "FAILED" in report
    assert check_main(["camvid", str(tmp_path / "nothing")]) == 1
