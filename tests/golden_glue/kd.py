"""Golden glue for pixel-wise KD (shared/golden/kd): KDLoss(T) on s_logits / t_logits."""
from losses.kd import KDLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["s_logits"])
    teacher = leaf(inp["t_logits"], requires_grad=False)
    kd = KDLoss(temperature=cfg.get("temperature", 1.0))(student, teacher)
    weighted = cfg.get("lambda_kd", 1.0) * kd
    return {"outputs": {"kd": kd, "weighted": weighted}, "grads": grads_of(weighted, {"s_logits": student})}
