"""Golden glue for DKD (shared/golden/dkd): step-0 and incremental losses (with the heads), label
masking and image selection, the old/new/hIoU metric, and the exemplar memory."""
import numpy as np
import torch
from torch import nn

from datasets.incremental import candidate_labels, keep_image, mask_label, sample_memory
from losses.dkd import dkd_loss
from models.dkd import head_outputs
from utils.evaluators import incremental_scores

from .common import grads_of, leaf

WEIGHTS = {"w_mbce": "w_mbce", "w_kd": "w_kd", "w_dkd_pos": "w_pos", "w_dkd_neg": "w_neg", "w_ac": "w_ac"}


def _heads(params, prefix):
    widths = []
    i = 0
    while "%s.%d.weight" % (prefix, i) in params:
        widths.append(params["%s.%d.weight" % (prefix, i)].shape[0])
        i += 1
    heads = nn.ModuleList([nn.Conv2d(params["%s.0.weight" % prefix].shape[1], c, 1) for c in widths]).double()
    with torch.no_grad():
        for i, head in enumerate(heads):
            head.weight.copy_(params["%s.%d.weight" % (prefix, i)])
            head.bias.copy_(params["%s.%d.bias" % (prefix, i)])
    return heads


def _loss(cfg, logit, label, **old):
    kwargs = {ours: cfg[theirs] for theirs, ours in WEIGHTS.items() if theirs in cfg}
    return dkd_loss(logit, label, cfg["n_old"], cfg["n_new"], cfg["pos_weight"], **kwargs, **old)


def run_losses(case):
    cfg, inp = case["config"], case["inputs"]
    label = inp["label"]
    if "logit_old" not in inp:          # a step-0 case: no teacher
        logit = leaf(inp["logit"])
        out = _loss(cfg, logit, label)
        return {"outputs": {k: out[k] for k in ("loss_mbce_per_class", "loss_mbce", "loss_ac", "total")},
                "grads": grads_of(out["total"], {"logit": logit})}
    loss_inputs = {k: leaf(inp[k]) for k in ("logit", "pos_reg", "neg_reg")}
    teacher = {k: leaf(inp[k], requires_grad=False) for k in ("logit_old", "pos_reg_old", "neg_reg_old")}
    out = _loss(cfg, loss_inputs["logit"], label, logit_old=teacher["logit_old"], pos=loss_inputs["pos_reg"],
                neg=loss_inputs["neg_reg"], pos_old=teacher["pos_reg_old"], neg_old=teacher["neg_reg_old"])
    grads = grads_of(out["total"], loss_inputs)
    # through the heads: the student's from x_pl, the teacher's from x_pl_old
    student, teacher_heads = _heads(case["params"], "student_cls"), _heads(case["params"], "teacher_cls")
    x_pl = leaf(inp["x_pl"])
    size = tuple(cfg["out_hw"])
    logit, pos, neg = head_outputs(x_pl, student, size)
    with torch.no_grad():
        logit_old, pos_old, neg_old = head_outputs(leaf(inp["x_pl_old"], False), teacher_heads, size)
    head_out = _loss(cfg, logit, label, logit_old=logit_old, pos=pos, neg=neg, pos_old=pos_old, neg_old=neg_old)
    named = {"x_pl": x_pl}
    named.update({"student_cls.%d.%s" % (i, n): getattr(h, n) for i, h in enumerate(student) for n in ("weight", "bias")})
    grads.update(grads_of(head_out["total"], named))
    from models.dkd import init_novel_classifier
    init_novel_classifier(student)
    outputs = {k: v for k, v in out.items()}
    outputs["init_novel.weight"], outputs["init_novel.bias"] = student[-1].weight.detach(), student[-1].bias.detach()
    return {"outputs": outputs, "grads": grads}


def run_masking(case):
    cfg, labels = case["config"], case["inputs"]["labels"].numpy()
    new, old = cfg["new_classes"], cfg["old_classes"]
    keep = lambda split, setting="overlap": torch.tensor([int(keep_image(np.unique(l), new, old, split, setting))  # noqa
                                                          for l in labels])
    masked = lambda split, value: torch.from_numpy(np.stack([mask_label(l, new, old, split, value) for l in labels]))  # noqa
    return {"outputs": {"keep_train_overlap": keep("train"), "keep_train_disjoint": keep("train", "disjoint"),
                        "keep_val": keep("val"), "keep_val_disjoint": keep("val", "disjoint"), "keep_test": keep("test"),
                        "masked_train": masked("train", 0), "masked_train_disjoint": masked("train", 0),
                        "masked_val_mask0": masked("val", 0), "masked_test_mask0": masked("test", 0),
                        "masked_val_mask255": masked("val", 255), "masked_test_mask255": masked("test", 255)},
            "grads": {}}


def run_metrics(case):
    from models.dkd import sigmoid_predict
    from utils.evaluators import IncrementalEvaluator
    cfg, inp = case["config"], case["inputs"]
    pred = sigmoid_predict(inp["logit"])
    evaluator = IncrementalEvaluator(cfg["num_class"], cfg["old_classes_idx"], cfg["new_classes_idx"])
    evaluator.reset()
    evaluator.process(pred, inp["target"])
    out = {"pred": pred, "confusion_matrix": evaluator.confusion}
    for prefix, cm, old, new in (("", evaluator.confusion, cfg["old_classes_idx"], cfg["new_classes_idx"]),
                                 ("cm_direct.", inp["cm_direct"], cfg["old_classes_idx"], cfg["new_classes_idx"])):
        scores = incremental_scores(cm, old, new)
        out[prefix + "iou_by_class"] = torch.tensor(scores["IoU"], dtype=torch.float64)
        for ours, theirs in (("mIoU_old", "miou_old"), ("mIoU_new", "miou_new"), ("mIoU_all", "miou_all"), ("hIoU", "hiou")):
            out[prefix + theirs] = torch.tensor(scores[ours], dtype=torch.float64)
    no_new = incremental_scores(inp["cm_direct"], cfg["old_classes_idx"] + cfg["new_classes_idx"], [])
    out["cm_direct.no_new.miou_all"] = torch.tensor(no_new["mIoU_all"], dtype=torch.float64)
    return {"outputs": out, "grads": {}}


def run_memory(case):
    cfg, inp = case["config"], case["inputs"]
    from datasets.incremental import step_classes
    outputs, previous = {}, []
    for step in (1, 2):
        key = "step%d." % step
        logits = inp.get(key + "old_logits") if step > 1 else None
        labels = candidate_labels(inp[key + "labels"], logits)
        candidates = previous + [[name, lab] for name, lab in zip(inp[key + "names"], labels)]
        _, old = step_classes(cfg["dataset"], cfg["task"], step)
        memory, names = sample_memory(candidates, old, cfg["mem_size"], inp[key + "cand_perm"].tolist(),
                                      inp[key + "class_order"].tolist())
        outputs.update({key + "candidates": candidates, key + "memory_candidates": memory, key + "memory_list": names})
        previous = memory
    return {"outputs": outputs, "grads": {}}


def run_case(case):
    """Dispatch on what the case holds (never on its name)."""
    cfg, inp = case["config"], case["inputs"]
    if "mem_size" in cfg:
        return run_memory(case)
    if "new_classes" in cfg and "labels" in inp:
        return run_masking(case)
    if "cm_direct" in inp or "target" in inp:
        return run_metrics(case)
    return run_losses(case)
