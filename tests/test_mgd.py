"""MGD and CPS through the real CLI on a synthetic semi-supervised split: a CPS teacher pair writes a
teacher file, MGD distils two teachers of different architectures, resumes exactly, 2 gloo processes
equal 1; the CutMix masks, the CPS pipeline and the bad inputs of issue 12."""
import os

import numpy as np
import pytest
import torch

from e2e_common import free_port, run_cli, student_weights, train

STUDENT = "kd_deeplabv3plus_cps_resnet18_citys"
BASE = ["--dataset", "citys", "--pipeline", "cps", "--crop-size", "40", "40", "--batch-size", "2", "--workers", "0",
        "--log-iter", "1", "--no-progress", "--seed", "0", "--student-model", "deeplabv3plus_cps",
        "--student-backbone", "resnet18"]


@pytest.fixture(scope="module")
def semi(tmp_path_factory):
    from datasets.synthetic import generate
    return generate("cityscapes", str(tmp_path_factory.mktemp("semi") / "citys"), num_train=8, num_val=1,
                    size=(48, 64), seed=0, semi_split=4)


def split_flags(semi):
    return ["--data", semi["root"], "--train-list", semi["labeled_list"], "--unlabeled-list", semi["unlabeled_list"]]


@pytest.fixture(scope="module")
def teachers(semi, tmp_path_factory):
    """T_D from a CPS run (ResNet-18 here, ResNet-101 in the recipes) and a random T_W of another architecture."""
    folder = tmp_path_factory.mktemp("teachers")
    argv = BASE + split_flags(semi) + ["--kd-method", "cps", "--cps-weight", "5", "--max-iterations", "2",
                                       "--task-loss", "ohem", "--ohem-min-kept", "500", "--skip-val",
                                       "--save-dir", str(folder / "cps")]
    assert train(argv) == 0
    deep = folder / "cps" / (STUDENT + ".pth")
    state = torch.load(deep, weights_only=True)
    assert not any(k.startswith(("branch", "module.")) for k in state)      # a plain branch-1 file
    from models import get_segmentation_model
    wide = folder / "wide.pth"
    torch.manual_seed(1)
    torch.save(get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=19).state_dict(), wide)
    resume = torch.load(folder / "cps" / (STUDENT + "_resume.pth"), weights_only=False)
    assert any(k.startswith("branch2.") for k in resume["method"]), "branch 2 is not in the resume file"
    return str(deep), str(wide)


def mgd_argv(semi, teachers, save_dir, *extra):
    deep, wide = teachers
    return (BASE + split_flags(semi) + [
        "--kd-method", "mgd", "--teacher-model", "deeplabv3plus_cps", "--teacher-backbone", "resnet18",
        "--teacher-pretrained", deep, "--teacher2-model", "deeplabv3plus_cps", "--teacher2-backbone", "mobilenetv2",
        "--teacher2-pretrained", wide, "--save-dir", str(save_dir), "--no-decay-norm-bias"] + list(extra))


def test_mgd_trains_from_two_teachers_and_resumes_exactly(semi, teachers, tmp_path):
    assert train(mgd_argv(semi, teachers, tmp_path / "full", "--max-iterations", "4", "--val-per-iters", "4",
                          "--val-mode", "slide", "--val-crop-size", "40", "40", "--val-stride", "27", "27",
                          "--val-miou", "present")) == 0
    log = open(next((tmp_path / "full").glob("*_log.txt"))).read()
    for term in ("pc_unl_tw", "pc_unl_td", "pc_lab_tw", "pc_lab_td", "sem", "content"):
        assert " %s " % term in log, term
    assert "teacher2 deeplabv3plus_cps/mobilenetv2" in log and "slide 40x40/27x27" in log
    cut = mgd_argv(semi, teachers, tmp_path / "cut", "--max-iterations", "4", "--skip-val")
    assert train(cut + ["--stop-at-iteration", "2"]) == 0
    assert train(cut + ["--resume", "auto"]) == 0
    full, resumed = (student_weights(tmp_path / n, STUDENT + ".pth") for n in ("full", "cut"))
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


@pytest.mark.slow      # ~30 s: two torchrun workers (the engine's own DDP test runs by default)
def test_mgd_two_processes_match_one(semi, teachers, tmp_path):
    """2 gloo processes x 1 image per stream == 1 process x 2 images: SyncBN in student AND train-mode
    teachers, the masks of the global batch split by rank, two student forwards before one backward."""
    common = ["--max-iterations", "1", "--skip-val", "--ce-reduction", "global", "--device", "cpu",
              "--mgd-sem-images-per-gpu", "2"]
    code, _, err = run_cli("train_kd.py", mgd_argv(semi, teachers, tmp_path / "one", *common))
    assert code == 0, err[-3000:]
    code, _, err = run_cli("torch.distributed.run", ["--nproc_per_node", "2", "--master_port", str(free_port()),
                                                     "train_kd.py"] + mgd_argv(semi, teachers, tmp_path / "two",
                                                                               *common), timeout=600)
    assert code == 0, err[-3000:]
    one, two = (student_weights(tmp_path / n, STUDENT + ".pth") for n in ("one", "two"))
    from models import get_segmentation_model
    torch.manual_seed(0)
    init = get_segmentation_model("deeplabv3plus_cps", "resnet18", num_class=19).state_dict()
    for key in init:
        if init[key].is_floating_point() and "running" not in key:
            step_one, step_two = (one[key] - init[key]).double(), (two[key] - init[key]).double()
            assert float((step_one - step_two).norm()) <= 2e-2 * float(step_one.norm()) + 1e-8, key


def test_step_masks_do_not_depend_on_the_process_count():
    from losses.cutmix import step_masks
    whole = step_masks(4, (20, 30), seed=3, iteration=7, micro=0, rank=0, world=1)
    halves = [step_masks(2, (20, 30), seed=3, iteration=7, micro=0, rank=r, world=2) for r in (0, 1)]
    assert torch.equal(whole, torch.cat(halves))
    assert not torch.equal(whole, step_masks(4, (20, 30), seed=3, iteration=8, micro=0, rank=0, world=1))
    assert set(whole.unique().tolist()) <= {0.0, 1.0} and 0.05 < float(whole.mean()) < 0.95


def test_cps_pipeline_steps():
    from datasets.cps_transforms import apply_cps_draws, cps_train_transform, normalize_rgb
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    label = np.arange(120, dtype=np.int32).reshape(10, 12) % 5
    # no flip, scale 1, a crop at the official off-by-one position: one row short, padded centred
    out_image, out_label = apply_cps_draws(image, label, (8, 12), False, 1.0, (3, 0))
    assert out_image.shape == (3, 8, 12) and (out_label[-1] == -1).all() and (out_label[0] != -1).all()
    np.testing.assert_allclose(out_image[:, :7], normalize_rgb(image)[3:10].transpose(2, 0, 1))
    # a crop larger than the image: padded centred (2 above, 2 below)
    small_image, small_label = apply_cps_draws(image, label, (14, 12), True, 1.0, (0, 0))
    assert (small_label[:2] == -1).all() and (small_label[-2:] == -1).all()
    np.testing.assert_array_equal(small_label[2:12], label[:, ::-1])
    assert np.abs(small_image[:, :2]).max() == 0
    for seed in range(20):
        img, lab = cps_train_transform(image, label, (8, 8), np.random.default_rng(seed))
        assert img.shape == (3, 8, 8) and lab.shape == (8, 8)


def test_official_partitions_are_shipped_and_read_as_they_are(tmp_path):
    from datasets import build_dataset
    from datasets.synthetic import generate
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "splits")
    counts = {"voc/train_aug_labeled_1-8.txt": 1323, "voc/train_aug_unlabeled_1-8.txt": 9259,
              "cityscapes/train_aug_labeled_1-16.txt": 186, "cityscapes/train_aug_unlabeled_1-16.txt": 2789}
    for name, count in counts.items():
        assert sum(1 for line in open(os.path.join(root, name)) if line.strip()) == count
    # a CPS Cityscapes line maps onto the official layout
    data = generate("cityscapes", str(tmp_path / "c"), num_train=1, num_val=1, size=(32, 64))["root"]
    image = next(p for p in sorted(os.listdir(os.path.join(data, "leftImg8bit", "train", "aachen"))))
    stem = image[:-len("_leftImg8bit.png")]
    line = tmp_path / "cps.txt"
    line.write_text("/images/train/%s.png\t/segmentation/train/%s_gtFine.png\n" % (stem, stem))
    dataset = build_dataset("citys", data, split="train", mode="val", list_file=str(line))
    assert dataset.samples[0].image.endswith("leftImg8bit/train/aachen/%s_leftImg8bit.png" % stem)
    assert dataset[0][1].shape == (32, 64)


def test_bad_semi_supervised_inputs_are_one_line_errors(semi, teachers, tmp_path):
    argv = mgd_argv(semi, teachers, tmp_path / "run", "--max-iterations", "1", "--skip-val")
    missing = tmp_path / "missing.txt"
    missing.write_text(open(semi["unlabeled_list"]).read() + "leftImg8bit/train/x/x_1_2_leftImg8bit.png\t"
                       "gtFine/train/x/x_1_2_gtFine_labelIds.png\n")
    overlap = tmp_path / "overlap.txt"
    overlap.write_text(open(semi["unlabeled_list"]).read() + open(semi["labeled_list"]).read())
    from models import get_segmentation_model
    wrong = tmp_path / "wrong.pth"
    torch.save(get_segmentation_model("deeplabv3plus_cps", "mobilenetv2", num_class=19).state_dict(), wrong)
    cases = [(argv + ["--unlabeled-list", str(missing)], "missing"),
             (argv + ["--unlabeled-list", str(overlap)], "share"),
             (argv + ["--teacher-pretrained", str(wrong)], "wrong.pth")]
    for args, needle in cases:
        code, out, err = run_cli("train_kd.py", args)
        lines = [l for l in err.strip().splitlines() if l.strip()]
        assert code != 0 and needle in lines[-1] and "Traceback" not in err, err[-2000:]
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").glob("*.pth"))
