"""The mmseg family in use: mmseg / mmrazor checkpoint files, wrong files, as a teacher of a CIRKD
student in one run (each network gets its own input), and the mmseg metadata."""
import os

import pytest
import torch

from e2e_common import TINY, make_citys, run_cli, train
from models import CheckpointError, get_segmentation_model
from models.meta import IMAGENET_RGB, model_meta


def mmseg_file(path, model, **extra):
    torch.save({"meta": {"mmseg_version": "0.26.0", "CLASSES": ["c%d" % i for i in range(19)]},
                "state_dict": {**model.state_dict(), **extra}}, path)
    return str(path)


def test_mmseg_and_mmrazor_files_load_strictly(tmp_path):
    torch.manual_seed(0)
    source = get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=True)
    plain = mmseg_file(tmp_path / "pspnet.pth", source)
    loaded = get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=None, pretrained=plain)
    assert loaded.aux and all(torch.equal(a, b) for a, b in zip(source.state_dict().values(),
                                                                loaded.state_dict().values()))
    razor = tmp_path / "razor.pth"
    torch.save({"meta": {}, "state_dict": {"architecture.model." + k: v for k, v in source.state_dict().items()}}, razor)
    again = get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=True, pretrained=str(razor))
    assert torch.equal(again.decode_head.conv_seg.weight, source.decode_head.conv_seg.weight)
    meta = model_meta(again)
    assert meta.input_norm == IMAGENET_RGB and meta.align_corners is False


def test_wrong_classes_or_architecture_is_a_one_line_error(tmp_path):
    ade = mmseg_file(tmp_path / "ade.pth", get_segmentation_model("pspnet", "resnet18_v1c", num_class=150, aux=True))
    with pytest.raises(CheckpointError) as info:
        get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=True, pretrained=ade)
    first = str(info.value).splitlines()[0]
    assert "ade.pth" in first and "decode_head.conv_seg.weight" in first and "(150, 128, 1, 1)" in first
    isa = mmseg_file(tmp_path / "isa.pth", get_segmentation_model("isanet", "resnet18_v1c", num_class=19, aux=True))
    with pytest.raises(CheckpointError) as info:
        get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=True, pretrained=isa)
    assert "isa.pth" in str(info.value).splitlines()[0] and "missing decode_head" in str(info.value).splitlines()[0]


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="resnet18_v1c"):
        get_segmentation_model("pspnet", "resnet18", num_class=19)
    with pytest.raises(ValueError, match="hrnetv2"):
        get_segmentation_model("fcn", "resnet18_v1c", num_class=19)


def test_mmseg_teacher_distils_a_cirkd_student(tmp_path):
    data = make_citys(str(tmp_path / "data"))
    teacher = mmseg_file(tmp_path / "teacher.pth", get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, aux=True))
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path / "run"), "--kd-method", "kd", "--max-iterations", "2",
                   "--teacher-model", "pspnet", "--teacher-backbone", "resnet18_v1c", "--teacher-pretrained", teacher]
    assert train(argv) == 0
    log = open(next((tmp_path / "run").glob("*_log.txt"))).read()
    assert "teacher pspnet/resnet18_v1c (19 classes, aux on" in log     # aux followed the checkpoint
    assert "input imagenet_rgb_mean_std, align_corners False" in log
    assert "input cirkd_bgr_mean, align_corners True" in log


@pytest.mark.parametrize("model,backbone,stride", [("pspnet", "resnet18_v1c", 8), ("isanet", "resnet18_v1c", 8),
                                                   ("deeplabv3plus", "mobilenetv2", 4), ("fcn", "hrnetv2_w18_small", 4)])
def test_mmseg_students_train(tmp_path, model, backbone, stride):
    """Each student family trains end to end through the real CLI (CE + 0.4 aux where it has one)."""
    data = make_citys(str(tmp_path / "data"))
    aux = [] if model == "fcn" else ["--aux"]
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path / "run"), "--kd-method", "none", "--max-iterations", "2",
                   "--student-model", model, "--student-backbone", backbone, "--val-per-iters", "2"] + aux
    assert train(argv) == 0
    weights = torch.load(next((tmp_path / "run").glob("*_best_model.pth")), weights_only=True)
    net = get_segmentation_model(model, backbone, num_class=19, aux=None, pretrained=None)
    assert set(weights) >= {k for k in net.state_dict() if not k.startswith("auxiliary_head.")}
    out = get_segmentation_model(model, backbone, num_class=19, aux=bool(aux)).eval()(torch.zeros(1, 3, 64, 64))
    assert out.logits.shape[-1] == 64 // stride


def test_distillation_across_output_strides(tmp_path):
    """HRNet-W18s student (logits at 1/4) from a PSPNet teacher (1/8): BPKD resizes the teacher logits and
    builds its edge mask at the student's size; KD resizes them too."""
    import torch.nn.functional as F
    from losses.common import kd_loss
    student = torch.randn(2, 19, 16, 16)
    teacher = torch.randn(2, 19, 8, 8)
    up = F.interpolate(teacher, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(kd_loss(student, teacher), kd_loss(student, up))
    data = make_citys(str(tmp_path / "data"))
    teacher_file = mmseg_file(tmp_path / "teacher.pth", get_segmentation_model("pspnet", "resnet18_v1c", num_class=19))
    argv = TINY + ["--data", data, "--save-dir", str(tmp_path / "run"), "--kd-method", "kd+bpkd", "--max-iterations", "2",
                   "--skip-val", "--student-model", "fcn", "--student-backbone", "hrnetv2_w18_small", "--no-aux",
                   "--teacher-model", "pspnet", "--teacher-backbone", "resnet18_v1c", "--teacher-pretrained", teacher_file]
    assert train(argv) == 0
    log = open(next((tmp_path / "run").glob("*_log.txt"))).read()
    assert " kd " in log and "bpkd" in log


def test_convert_checkpoint_handles_mmrazor_and_mmseg_files(tmp_path):
    source = get_segmentation_model("isanet", "resnet18_v1c", num_class=19, aux=True)
    state = {"architecture.model." + k: v for k, v in source.state_dict().items()}
    state["distiller.teacher.backbone.stem.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save({"meta": {"mmrazor": "0.3"}, "state_dict": state}, tmp_path / "razor.pth")
    code, out, err = run_cli("tools/convert_checkpoint.py", [str(tmp_path / "razor.pth"), str(tmp_path / "plain.pth")])
    assert code == 0, err
    assert "mmrazor" in out and "dropped 1 teacher/distiller keys" in out
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    assert list(plain) == list(source.state_dict())
    get_segmentation_model("isanet", "resnet18_v1c", num_class=19, aux=True, pretrained=str(tmp_path / "plain.pth"))


def test_imagenet_backbone_files_of_the_mmseg_family(tmp_path):
    """open-mmlab resnet*_v1c files (stem/layer keys + fc) and mmcls files (backbone.* + head.*)."""
    from models.mmseg.mobilenet_v2 import MobileNetV2
    from models.mmseg.resnet_v1c import ResNetV1c
    resnet = ResNetV1c(18)
    torch.save({**resnet.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)},
               tmp_path / "resnet18_v1c.pth")
    model = get_segmentation_model("pspnet", "resnet18_v1c", num_class=19, pretrained_base=str(tmp_path / "resnet18_v1c.pth"))
    assert torch.equal(model.backbone.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)
    mobile = MobileNetV2()
    torch.save({"meta": {}, "state_dict": {**{"backbone." + k: v for k, v in mobile.state_dict().items()},
                                           "head.fc.weight": torch.zeros(1000, 1280)}}, tmp_path / "mbv2.pth")
    model = get_segmentation_model("deeplabv3plus", "mobilenetv2", num_class=19, pretrained_base=str(tmp_path / "mbv2.pth"))
    assert torch.equal(model.backbone.layer7[0].conv[1].conv.weight, mobile.layer7[0].conv[1].conv.weight)
    with pytest.raises(CheckpointError):
        get_segmentation_model("pspnet", "resnet101_v1c", num_class=19, pretrained_base=str(tmp_path / "resnet18_v1c.pth"))


def test_aux_width_follows_the_checkpoint_and_the_flag(tmp_path):
    """BPKD's Cityscapes DLV3+-MBV2 student has a 64-wide aux head: --student-aux-width builds it, and a
    file with that head loads without the flag (the width is read from auxiliary_head.convs.0)."""
    narrow = get_segmentation_model("deeplabv3plus", "mobilenetv2", num_class=19, aux=True, head_width=128, aux_width=64)
    assert narrow.state_dict()["auxiliary_head.convs.0.conv.weight"].shape[0] == 64
    path = mmseg_file(tmp_path / "narrow.pth", narrow)
    loaded = get_segmentation_model("deeplabv3plus", "mobilenetv2", num_class=19, aux=None, pretrained=path)
    assert loaded.state_dict()["auxiliary_head.convs.0.conv.weight"].shape[0] == 64
    import train_kd
    args = train_kd.parse_args(["--student-model", "deeplabv3", "--student-aux-width", "64", "--dataset", "citys"])
    from engine.specs import BuildError, build_from_spec, student_spec
    with pytest.raises(BuildError, match="aux_width"):
        build_from_spec(student_spec(args), None, args)
