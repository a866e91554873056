"""Golden glue for MasKD (shared/golden/maskd).

Stage-1 cases (inputs ``teacher_logits`` [+ ``teacher_aux_logits``], ``target``) go through
``MasKDTokens``; stage-2 cases (``logits_s``/``logits_t`` [+ ``aux_s``/``aux_t``]) through ``MasKD``.
Tokens come from ``params.mask_token``.
"""
import torch

from losses.base import StepContext
from losses.maskd import MasKD, MasKDTokens, dice_diversity, masked_distillation_loss, token_masks
from losses.task import SegCrossEntropyLoss
from models.outputs import SegOutputs

from .common import grads_of, leaf


def outputs_of(main, aux=None):
    if aux is None:
        return SegOutputs([main], ["logits"])
    return SegOutputs([main, aux], ["logits", "aux_logits"])


def run_stage1(case):
    cfg, inp = case["config"], case["inputs"]
    tokens = case["params"]["mask_token"]
    method = MasKDTokens(tokens.shape[1], num_tokens=tokens.shape[0],
                         aux_weight=cfg.get("aux_weight") or 0.0, dice_weight=cfg.get("dice_weight", 1.0),
                         ignore_index=cfg.get("ignore_index", -1), mask_token=tokens).double()
    teacher_logits = leaf(inp["teacher_logits"], requires_grad=False)
    teacher_aux = leaf(inp["teacher_aux_logits"], requires_grad=False) if "teacher_aux_logits" in inp else None
    labels = inp["target"]
    ctx = StepContext(student=None, teacher=outputs_of(teacher_logits, teacher_aux), labels=labels,
                      iteration=1, max_iterations=1, ignore_index=method.ignore_index)
    terms = method(ctx)
    total = sum(terms.values())

    masked, masks = method.masked_logits(teacher_logits)
    criterion = SegCrossEntropyLoss(method.ignore_index)
    outputs = {"ce_main": criterion(masked, labels), "dice_loss": dice_diversity(masks), "total": total}
    task = outputs["ce_main"]
    if teacher_aux is not None:
        outputs["ce_aux"] = criterion(teacher_aux, labels)
        task = task + method.aux_weight * outputs["ce_aux"]
    outputs["task_loss"] = task
    return {"outputs": outputs, "grads": grads_of(total, {"mask_token": method.mask_token}),
            "intermediates": {"masked_logits": masked.detach()}}


def run_stage2(case):
    cfg, inp = case["config"], case["inputs"]
    tokens = case["params"]["mask_token"]
    use_aux = "aux_s" in inp and bool(cfg.get("aux_weight"))
    method = MasKD(tokens, lambda_maskd=cfg.get("lambda_kd", 1.0), aux_weight=cfg.get("aux_weight") or 0.0,
                   use_aux=use_aux).double()
    logits_s = leaf(inp["logits_s"])
    logits_t = leaf(inp["logits_t"], requires_grad=False)
    named = {"logits_s": logits_s}
    aux_s = aux_t = None
    if use_aux:
        aux_s = named["aux_s"] = leaf(inp["aux_s"])
        aux_t = leaf(inp["aux_t"], requires_grad=False)
    ctx = StepContext(student=outputs_of(logits_s, aux_s), teacher=outputs_of(logits_t, aux_t),
                      labels=torch.zeros(1, 1, 1, dtype=torch.long), iteration=1, max_iterations=1)
    terms = method(ctx)
    total = sum(terms.values())
    outputs = {"maskd_main": masked_distillation_loss(logits_s, logits_t, method.mask_token), "total": total}
    if use_aux:
        outputs["maskd_aux"] = masked_distillation_loss(aux_s, aux_t, method.mask_token)
    return {"outputs": outputs, "grads": grads_of(total, named),
            "intermediates": {"mask_from_teacher_main": token_masks(method.mask_token, logits_t).detach()}}


def run_case(case):
    if "teacher_logits" in case["inputs"]:
        return run_stage1(case)
    return run_stage2(case)
