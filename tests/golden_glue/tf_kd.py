"""Golden glue for Tf-KD (shared/golden/tf_kd): logits (+ teacher_logits for self), labels with ignore."""
from losses.tf_kd import TfKDLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    loss = TfKDLoss(variant=cfg["variant"], alpha=cfg["alpha"], temperature=cfg["T"],
                    multiplier=cfg["multiplier"], correct_prob=cfg.get("correct_prob", 0.99),
                    ignore_index=cfg["ignore_index"])
    logits = leaf(inp["logits"])
    teacher = leaf(inp["teacher_logits"], requires_grad=False) if "teacher_logits" in inp else None
    out = loss(logits, inp["labels"], teacher)
    return {"outputs": {"loss": out["loss"], "ce": out["ce"], "kl": out["kl"]},
            "grads": grads_of(out["loss"], {"logits": logits})}
