"""Golden glue for IFVD (shared/golden/ifvd): IFVDLoss(K, ignore)(s_feat, t_feat, labels)."""
from losses.ifvd import IFVDLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["s_feat"])
    crit = IFVDLoss(cfg["num_classes"], ignore_index=cfg.get("ignore_label", cfg.get("ignore_index", -1)))
    ifv = crit(student, leaf(inp["t_feat"], requires_grad=False), inp["labels"])
    weighted = cfg.get("lambda_ifv", 20.0) * ifv
    return {"outputs": {"ifv": ifv, "weighted": weighted}, "grads": grads_of(weighted, {"s_feat": student})}
