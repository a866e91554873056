"""The mmseg pipeline variant against outputs recorded from mmsegmentation 0.26 itself
(``tests/data/mmseg_pipeline/make.py``), and its wiring into datasets, training and evaluation."""
import os

import numpy as np
import pytest
import torch

from datasets import build_dataset, build_pipeline, get_dataset_info
from datasets.mmseg_transforms import (Draws, keep_ratio_size, mmseg_test_transform, mmseg_train_transform,
                                       photometric_distortion)

CASES = np.load(os.path.join(os.path.dirname(__file__), "data", "mmseg_pipeline", "cases.npz"))


def _count(prefix):
    return len({k.split("_")[0] for k in CASES.files if k.startswith(prefix)})


def _ignore_to_minus_one(label):
    label = label.astype(np.int32)
    label[label == 255] = -1
    return label


@pytest.mark.parametrize("index", range(_count("train")))
def test_train_pipeline_matches_mmseg(index):
    p = "train%d_" % index
    draws = Draws(np.random.RandomState(int(CASES[p + "seed"])))
    image, label = mmseg_train_transform(CASES[p + "image"], _ignore_to_minus_one(CASES[p + "label"]),
                                         tuple(CASES[p + "crop"]), tuple(CASES[p + "img_scale"]), draws)
    want_image = CASES[p + "out_image"].transpose(2, 0, 1)
    assert image.shape == want_image.shape and image.dtype == np.float32
    np.testing.assert_allclose(image, want_image, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(label, _ignore_to_minus_one(CASES[p + "out_label"]))


def test_cases_cover_padding_retries_and_flips():
    # the recorded cases exercise a crop larger than the resized image (padding) and ignore pixels
    padded = [i for i in range(_count("train")) if (CASES["train%d_out_label" % i] == 255).all(axis=1).any()]
    assert padded, "no recorded case pads the crop"


@pytest.mark.parametrize("index", range(_count("test")))
def test_test_pipeline_matches_mmseg(index):
    p = "test%d_" % index
    raw = CASES[p + "image"]
    label = np.zeros(raw.shape[:2], np.int32)
    image, out_label = mmseg_test_transform(raw, label, tuple(CASES[p + "img_scale"]))
    np.testing.assert_allclose(image, CASES[p + "out_image"].transpose(2, 0, 1), rtol=0, atol=1e-5)
    assert out_label.shape == raw.shape[:2]     # the label keeps the original size


def test_keep_ratio_size_is_mmcv_rescale_size():
    assert keep_ratio_size(1024, 2048, (2048, 512)) == (512, 1024)
    assert keep_ratio_size(375, 500, (520, 520)) == (390, 520)
    assert keep_ratio_size(683, 512, (2048, 512)) == (683, 512)


def test_photometric_distortion_keeps_uint8_and_changes_colours():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    outs = [photometric_distortion(image.copy(), Draws(np.random.default_rng(s))) for s in range(8)]
    assert all(o.dtype == np.uint8 and o.shape == image.shape for o in outs)
    assert any(not np.array_equal(o, image) for o in outs)


def test_reduce_zero_label_matches_mmseg():
    # mmseg LoadAnnotations(reduce_zero_label=True): 0 -> 255, v -> v - 1, 255 stays ignore
    from datasets import get_format
    raw = np.arange(256, dtype=np.uint8)
    mmseg = raw.copy()
    mmseg[mmseg == 0] = 255
    mmseg = mmseg - 1
    mmseg[mmseg == 254] = 255
    for name, classes in (("ade20k", 150), ("pascal_context", 59)):
        lut = get_format(name).label_lut
        valid = (raw <= classes) | (raw == 255)
        if name == "ade20k":
            valid = raw <= classes
        ours = lut[raw[valid]]
        want = _ignore_to_minus_one(mmseg[valid])
        np.testing.assert_array_equal(ours, want)


def test_pipeline_choice_and_bad_input(tmp_path):
    info = get_dataset_info("citys")
    assert build_pipeline("mmseg", info).img_scale == (2048, 1024)
    assert build_pipeline("mmseg", get_dataset_info("pascal_context")).img_scale == (520, 520)
    with pytest.raises(ValueError, match="unknown --pipeline"):
        build_pipeline("detectron", info)
    with pytest.raises(ValueError, match="--img-scale"):
        build_pipeline("mmseg", info, (0, 10))
    with pytest.raises(ValueError, match="--img-scale belongs"):
        build_pipeline("cirkd", info, (10, 10))


def test_picture_round_trip():
    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for name in ("cirkd", "mmseg"):
        pipe = build_pipeline(name, get_dataset_info("ade20k"), None if name == "cirkd" else (16, 12))
        tensor, _ = pipe.val(image, np.zeros((12, 16), np.int32))
        rgb = pipe.to_rgb_uint8(tensor)
        assert np.abs(rgb.astype(int) - image[:, :, ::-1].astype(int)).max() <= 1


def test_dataset_uses_the_mmseg_pipeline(tmp_path):
    from datasets.synthetic import generate
    root = generate("cityscapes", str(tmp_path / "citys"), num_train=1, num_val=1, size=(64, 128), seed=3)["root"]
    ds = build_dataset("citys", root, split="train", mode="train", crop_size=(32, 48), pipeline="mmseg",
                       img_scale=(96, 48))
    image, label, _ = ds[(0, 3)]
    again, label_again, _ = ds[(0, 3)]
    assert image.shape == (3, 32, 48) and torch.equal(image, again) and torch.equal(label, label_again)
    assert abs(float(image.mean())) < 3     # mean/std normalised, not BGR minus mean
    val = build_dataset("citys", root, split="val", mode="val", pipeline="mmseg", img_scale=(48, 24))
    image, label, _ = val[0]
    assert image.shape[-2:] != label.shape[-2:] and max(image.shape[-2:]) <= 48


class _Recorder(torch.nn.Module):
    """Logits = a fixed 1x1 conv at stride 2; records the input sizes it sees."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 1)
        self.meta = type("Meta", (), {"align_corners": False})()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return [self.conv(x[:, :, ::2, ::2])]


def test_slide_without_padding_uses_the_image_as_window():
    from utils.inference import predict
    model = _Recorder()
    image = torch.randn(1, 3, 30, 70)
    predict(model, image, 4, mode="slide", crop=(48, 48), stride=(32, 32), slide_pad="none")
    assert model.seen == [(30, 48), (30, 48)]           # mmseg: windows shrink to the image height
    model.seen.clear()
    predict(model, image, 4, mode="slide", crop=(48, 48), stride=(32, 32), slide_pad="corner")
    assert model.seen == [(48, 48), (48, 48)]           # CIRKD: the image is padded up to the window


def test_evaluate_resizes_scores_to_the_original_label():
    from utils.evaluation import evaluate
    from utils.evaluators import MIoUEvaluator
    model = _Recorder()
    image = torch.randn(1, 3, 20, 40)                   # the rescaled test image
    label = torch.randint(0, 4, (1, 30, 60))            # the label at its original size
    seen = {}

    def on_image(index, images, labels, pred, names):
        seen["pred"] = tuple(pred.shape)

    evaluate(model, [(image, label, ["a"])], MIoUEvaluator(4), torch.device("cpu"), on_image=on_image)
    assert seen["pred"] == (1, 30, 60)


def test_eval_cli_with_the_mmseg_test_pipeline(tmp_path):
    """eval.py --pipeline mmseg: the image is rescaled, the prediction scored at the label's size,
    slide windows unpadded; pictures come out at the label's size; mIoU and mAcc reported."""
    import json
    from PIL import Image
    from datasets.synthetic import generate
    from e2e_common import evaluate as eval_cli
    from models import get_segmentation_model
    root = generate("ade20k", str(tmp_path / "ade"), num_train=1, num_val=2, size=(40, 60), seed=2)["root"]
    weights = tmp_path / "pspnet.pth"
    torch.save(get_segmentation_model("pspnet", "resnet18_v1c", num_class=150, aux=False).state_dict(), weights)
    out = tmp_path / "eval"
    argv = ["--model", "pspnet", "--backbone", "resnet18_v1c", "--dataset", "ade20k", "--data", root,
            "--pretrained", str(weights), "--pipeline", "mmseg", "--img-scale", "96", "32", "--mode", "slide",
            "--crop-size", "32", "32", "--stride", "16", "16", "--workers", "0", "--no-progress",
            "--save-dir", str(out), "--save-pred"]
    assert eval_cli(argv) == 0
    result = json.load(open(out / "results.json"))
    assert result["protocol"].startswith("mmseg pipeline, slide") and "mAcc" in result
    preds = sorted((out / "pred").glob("*_overlay.jpg"))
    assert len(preds) == 2 and Image.open(preds[0]).size == (60, 40)
    assert eval_cli(argv[:-4] + ["--img-scale", "0", "5", "--save-dir", str(tmp_path / "bad")]) != 0
