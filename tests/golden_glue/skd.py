"""Golden glue for SKD (shared/golden/skd).

A case may hold the pair-wise inputs (s_feat, t_feat) and/or the discriminator outputs
(d_out_s, d_out_t) of the holistic term; each present part is run.
"""
from losses.skd import StructuralKDLoss, adv_d_loss, adv_g_loss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    outputs, grads = {}, {}
    if "s_feat" in inp:
        if cfg.get("pool_kernel", 2) != 2 or not cfg.get("pool_ceil_mode", True):
            raise ValueError("SKD pair-wise: only CIRKD's 2x2 ceil-mode pooling is implemented (case %s)" % case["case"])
        student = leaf(inp["s_feat"])
        pairwise = StructuralKDLoss()(student, leaf(inp["t_feat"], requires_grad=False))
        outputs["pairwise"] = pairwise
        outputs["weighted"] = cfg.get("lambda_skd", 10.0) * pairwise
        grads.update(grads_of(outputs["weighted"], {"s_feat": student}))
    if "d_out_s" in inp:
        kind = cfg.get("adv_type", "hinge")
        d_student = leaf(inp["d_out_s"])
        d_teacher = leaf(inp["d_out_t"], requires_grad=False)
        outputs["adv_G"] = adv_g_loss(d_student)
        outputs["adv_D"] = adv_d_loss(d_student, d_teacher, kind=kind)
        outputs["weighted_G"] = cfg.get("lambda_adv", 0.001) * outputs["adv_G"]
        outputs["weighted_D"] = cfg.get("lambda_d", 0.1) * outputs["adv_D"]
        grads["d_out_s_from_G"] = grads_of(outputs["weighted_G"], {"d": d_student})["d"]
        grads["d_out_s_from_D"] = grads_of(outputs["weighted_D"], {"d": d_student})["d"]
    if not outputs:
        raise KeyError("SKD golden case %s has neither s_feat/t_feat nor d_out_s/d_out_t" % case["case"])
    return {"outputs": outputs, "grads": grads}
