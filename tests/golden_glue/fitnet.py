"""Golden glue for FitNet (shared/golden/fitnet): FitNetLoss(Cs, Ct) with params["conv.weight"]."""
from losses.fitnet import FitNetLoss

from .common import grads_of, leaf, load_params


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["s_feat"])
    teacher = leaf(inp["t_feat"], requires_grad=False)
    crit = FitNetLoss(student.shape[1], teacher.shape[1])
    load_params(crit, case.get("params") or {})
    fit = crit(student, teacher)
    weighted = cfg.get("lambda_fitnet", 10.0) * fit
    named = {"s_feat": student, "conv.weight": crit.conv.weight}
    return {"outputs": {"fitnet": fit, "weighted": weighted}, "grads": grads_of(weighted, named)}
