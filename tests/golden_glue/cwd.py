"""Golden glue for CWD (shared/golden/cwd): CWDLoss(adapter_in, adapter_out, norm, T, divergence)(s_in, t_in)."""
from losses.cwd import CWDLoss

from .common import grads_of, leaf, load_params


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["s_in"])
    teacher = leaf(inp["t_in"], requires_grad=False)
    crit = CWDLoss(cfg["adapter_in"], cfg["adapter_out"], norm_type=cfg.get("norm_type", "channel"),
                   temperature=cfg.get("temperature", 4.0), divergence=cfg.get("divergence", "kl"))
    load_params(crit, case.get("params") or {})
    cwd = crit(student, teacher)
    weighted = cfg.get("lambda_cwd", 1.0) * cwd
    named = {"s_in": student}
    if student.shape[1] != teacher.shape[1]:
        named["conv.weight"] = crit.conv.weight
    return {"outputs": {"cwd": cwd, "weighted": weighted}, "grads": grads_of(weighted, named)}
