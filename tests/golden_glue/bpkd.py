"""Golden glue for BPKD (shared/golden/bpkd; paper-derived numbers, no official code exists)."""
from losses.bpkd import bpkd_loss

from .common import grads_of, leaf

KEYWORDS = ("kernel_size", "alpha", "tau_edge", "tau_body", "lambda_edge", "lambda_body", "edge_reduction",
            "ignore_index")


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    student = leaf(inp["student_logits"])
    teacher = leaf(inp["teacher_logits"], requires_grad=False)
    out = bpkd_loss(student, teacher, inp["labels"], **{k: cfg[k] for k in KEYWORDS if k in cfg})
    outputs = {k: out[k] for k in ("loss_edge", "loss_body", "weighted_edge", "weighted_body", "total")}
    return {"outputs": outputs, "grads": grads_of(out["total"], {"student_logits": student}),
            "intermediates": {"edge_mask": out["edge_mask"]}}
