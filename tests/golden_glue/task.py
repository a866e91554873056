"""Golden glue for the task loss (shared/golden/task)."""
from losses.task import SegCrossEntropyLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    crit = SegCrossEntropyLoss(ignore_index=cfg["ignore_index"])
    main = leaf(inp["s_logits_main"])
    named = {"s_logits_main": main}
    outputs = {"ce_main": crit(main, inp["labels"])}
    total = outputs["ce_main"]
    if cfg.get("aux"):
        aux = leaf(inp["s_logits_aux"])
        named["s_logits_aux"] = aux
        outputs["ce_aux"] = crit(aux, inp["labels"])
        total = total + cfg["aux_weight"] * outputs["ce_aux"]
    outputs["total"] = total
    return {"outputs": outputs, "grads": grads_of(total, named)}
