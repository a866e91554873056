"""Golden glue for MGD (shared/golden/mgd): the per-iteration loss block and the CutMix mask generator."""
import torch

from losses.cutmix import box_mask
from losses.mgd import mgd_loss, ohem_criterion

from .common import grads_of, leaf

TEACHER_INPUTS = ("tw_logits_u0", "tw_logits_u1", "td_logits_u0", "td_logits_u1", "tw_logits_mix", "tw_feat_mix",
                  "td_logits_mix", "tw_logits_lab", "td_logits_lab", "s_logits_u0", "s_logits_u1")


def _draws(inp):
    return {k.split("/", 1)[1]: v.numpy() for k, v in inp.items() if k.startswith("mask_draws/")}


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    if "gts" not in inp:        # the mask generator alone
        n, shape = cfg["n_masks"], tuple(cfg["mask_shape"])
        mask = box_mask(n, shape, _draws(inp), n_boxes=cfg["n_boxes"])
        return {"outputs": {"mask": mask, "mask_mean": mask.double().mean()}, "grads": {}}
    mask = box_mask(inp["gts"].shape[0], tuple(inp["gts"].shape[-2:]), _draws(inp)).double()
    assert torch.equal(mask, inp["mask"].double()), "mask regenerated from the draws differs from the case's"
    student = {k: leaf(inp[k]) for k in ("s_logits_mix", "s_feat_mix", "s_logits_lab")}
    teacher = {k: leaf(inp[k], requires_grad=False) for k in TEACHER_INPUTS}
    sup = None
    if cfg.get("sup_loss") == "prob_ohem_ce":
        sup = ohem_criterion(cfg["ignore_index"], cfg["ohem_thresh"], cfg["ohem_min_kept"])
    out = mgd_loss(student["s_logits_mix"], student["s_feat_mix"], student["s_logits_lab"], inp["gts"], mask,
                   lambda_1=cfg["lambda_1"], lambda_2=cfg["lambda_2"], sup_criterion=sup,
                   ignore_index=cfg["ignore_index"], pool=cfg["pool_size"], **teacher)
    grads = {"loss/" + k: g for k, g in grads_of(out["loss"], student).items()}
    grads.update({"sem_sens_loss/s_logits_mix": grads_of(out["sem_sens_loss"], {"s": student["s_logits_mix"]})["s"],
                  "content_loss/s_feat_mix": grads_of(out["content_loss"], {"s": student["s_feat_mix"]})["s"]})
    return {"outputs": {k: v for k, v in out.items()}, "grads": grads}
