"""Record mmsegmentation 0.26's training / test pipeline outputs for tests/test_mmseg_pipeline.py.

Not run by the tests (they read ``cases.npz``). To regenerate, outside the project environment:

    pip download mmsegmentation==0.26.0 mmcv-lite==2.2.0 --no-deps -d /tmp/mm
    pip install --target /tmp/mm/site mmengine==0.10.4
    unzip -o /tmp/mm/mmsegmentation-0.26.0-*.whl -d /tmp/mm/mmseg026
    unzip -o /tmp/mm/mmcv_lite-2.2.0-*.whl -d /tmp/mm/site
    PYTHONPATH=/tmp/mm/site python tests/data/mmseg_pipeline/make.py /tmp/mm/mmseg026

mmseg 0.26's ``datasets/pipelines/transforms.py`` is executed as is; only its registry import and
three mmcv 1.x helpers are stubbed (mmcv-lite 2.2's image functions are mmcv 1.x's). The ratio
resize, category-balanced crop, flip, photometric distortion, normalisation and padding of
``Resize/RandomCrop/RandomFlip/PhotoMetricDistortion/Normalize/Pad`` run under
``np.random.seed(seed)``; the test replays them with ``RandomState(seed)``.
"""
import os
import sys
import types

import numpy as np


def load_mmseg_transforms(mmseg_root: str):
    import mmcv
    from mmengine.utils import is_list_of, is_tuple_of
    mmcv.is_list_of = is_list_of
    utils = types.ModuleType("mmcv.utils")
    utils.is_tuple_of = is_tuple_of
    utils.deprecated_api_warning = lambda *a, **k: (lambda fn: fn)
    sys.modules["mmcv.utils"] = utils
    mmcv.utils = utils
    registry = types.SimpleNamespace(register_module=lambda *a, **k: (lambda cls: cls))
    for name in ("mmseg", "mmseg.datasets", "mmseg.datasets.pipelines"):
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
    builder = types.ModuleType("mmseg.datasets.builder")
    builder.PIPELINES = registry
    sys.modules["mmseg.datasets.builder"] = builder
    path = os.path.join(mmseg_root, "mmseg", "datasets", "pipelines", "transforms.py")
    module = types.ModuleType("mmseg.datasets.pipelines.transforms")
    module.__package__ = "mmseg.datasets.pipelines"
    exec(compile(open(path).read(), path, "exec"), module.__dict__)
    return module


def scene(rng, height, width, classes):
    """A blocky label (some ignore) and an image whose colour follows the label plus noise."""
    label = np.zeros((height, width), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, height), rng.integers(0, width)
        label[y:y + rng.integers(5, height), x:x + rng.integers(5, width)] = rng.integers(0, classes)
    label[rng.random((height, width)) < 0.03] = 255
    colours = rng.integers(0, 256, (256, 3))
    image = np.clip(colours[label] + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    return image, label


def main(mmseg_root: str) -> None:
    T = load_mmseg_transforms(mmseg_root)
    norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
    rng = np.random.default_rng(0)
    out = {}
    train_cases = [  # (height, width, img_scale (W, H), crop (H, W), seed)
        (64, 128, (128, 64), (32, 64), 1), (64, 128, (128, 64), (32, 64), 2), (48, 80, (96, 48), (40, 40), 3),
        (90, 60, (120, 60), (48, 48), 4), (40, 40, (64, 32), (48, 48), 5), (75, 100, (160, 80), (56, 72), 6),
        (64, 128, (128, 64), (32, 64), 7), (50, 70, (70, 70), (60, 60), 8)]
    for index, (h, w, img_scale, crop, seed) in enumerate(train_cases):
        image, label = scene(rng, h, w, 5)
        results = dict(img=image.copy(), gt_semantic_seg=label.copy(), seg_fields=["gt_semantic_seg"])
        np.random.seed(seed)
        for step in (T.Resize(img_scale=img_scale, ratio_range=(0.5, 2.0)),
                     T.RandomCrop(crop_size=crop, cat_max_ratio=0.75), T.RandomFlip(prob=0.5),
                     T.PhotoMetricDistortion(), T.Normalize(**norm),
                     T.Pad(size=crop, pad_val=0, seg_pad_val=255)):
            results = step(results)
        prefix = "train%d_" % index
        out.update({prefix + "image": image, prefix + "label": label, prefix + "img_scale": np.array(img_scale),
                    prefix + "crop": np.array(crop), prefix + "seed": np.array(seed),
                    prefix + "out_image": results["img"].astype(np.float32),
                    prefix + "out_label": results["gt_semantic_seg"]})
    for index, (h, w, img_scale) in enumerate([(60, 90, (120, 40)), (70, 50, (52, 52)), (64, 128, (128, 64))]):
        image, label = scene(rng, h, w, 5)
        results = dict(img=image.copy(), scale=img_scale, flip=False, flip_direction="horizontal")
        for step in (T.Resize(keep_ratio=True), T.RandomFlip(), T.Normalize(**norm)):
            results = step(results)
        prefix = "test%d_" % index
        out.update({prefix + "image": image, prefix + "img_scale": np.array(img_scale),
                    prefix + "out_image": results["img"].astype(np.float32)})
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.npz")
    np.savez_compressed(target, **out)
    print("wrote %s (%d train, %d test cases)" % (target, len(train_cases), 3))


if __name__ == "__main__":
    main(sys.argv[1])
