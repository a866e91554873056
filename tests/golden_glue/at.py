"""Golden glue for AT (shared/golden/at): ATLoss(p)(s_feat, t_feat)."""
from losses.at import ATLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["s_feat"])
    at = ATLoss(p=cfg.get("p", 2))(student, leaf(inp["t_feat"], requires_grad=False))
    weighted = cfg.get("lambda_at", 10000.0) * at
    return {"outputs": {"at": at, "weighted": weighted}, "grads": grads_of(weighted, {"s_feat": student})}
