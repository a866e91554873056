"""Golden glue for Af-DCD (shared/golden/af_dcd): the official OmniContrastiveFeatureLoss (+ CriterionKD)."""
from losses.af_dcd import CAMVID_CONTRAST_CROP, AfDCD, keep_from_uniform
from losses.kd import kd_loss

from .common import grads_of, leaf, load_params


def build(cfg) -> AfDCD:
    """The method from a case config (the official constructor arguments plus the loss weights)."""
    return AfDCD(cfg["student_channels"], cfg["teacher_channels"],
                 lambda_kd=cfg.get("lambda_kd") or 0.0,
                 lambda_fd=cfg["lambda_fd"], lambda_ctr=cfg["lambda_ctr"],
                 kd_temperature=cfg.get("kd_temperature") or 1.0,
                 tau=cfg["tau"], num_groups=cfg["M"], pool_size=cfg["pool_size"],
                 patch_size=cfg["patch_size"], rand_mask=cfg["rand_mask"], mask_ratio=cfg["mask_ratio"],
                 enhance_projector=cfg["enhance_projector"],
                 contrast_crop=CAMVID_CONTRAST_CROP if cfg.get("dataset") == "camvid" else None,
                 variant=cfg.get("variant", "omni"))


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    method = build(cfg)
    load_params(method, case.get("params") or {})
    feat_s = leaf(inp["feat_s"])
    feat_t = leaf(inp["feat_t"], requires_grad=False)
    if "keep_mask" in inp:
        keep = inp["keep_mask"].double()
    elif "rand_uniform" in inp:
        keep = keep_from_uniform(inp["rand_uniform"], cfg["mask_ratio"]).double()
    else:
        keep = None   # deterministic centre mask when rand_mask is off
    fd, ctr = method.feature_losses(feat_s, feat_t, keep_mask=keep)
    outputs = {"fd_loss": fd, "ctr_loss": ctr}
    total = cfg["lambda_fd"] * fd + cfg["lambda_ctr"] * ctr
    named = {"feat_s": feat_s}
    if "logits_s" in inp:
        logits_s = leaf(inp["logits_s"])
        named["logits_s"] = logits_s
        outputs["kd_loss"] = kd_loss(logits_s, leaf(inp["logits_t"], requires_grad=False), cfg["kd_temperature"])
        total = total + cfg["lambda_kd"] * outputs["kd_loss"]
    outputs["total"] = total
    named.update({"params." + k: p for k, p in method.named_parameters()})
    return {"outputs": outputs, "grads": grads_of(total, named)}
