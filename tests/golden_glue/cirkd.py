"""Golden glue for CIRKD (shared/golden/cirkd): KD, the mini-batch relation and the memory terms.

The method is built from ``case["config"]`` (a term whose weight is missing is off), the channel
counts from the inputs; the case's queues/pointers become the method's buffers and its random
draws are injected through ``ctx.extra["cirkd_draws"]``.
"""
import torch

from losses.base import StepContext
from losses.cirkd import CIRKD
from models.outputs import SegOutputs

from .common import grads_of, leaf, load_params

# method term name -> golden output name
OUTPUT_NAMES = {"kd": "kd", "minibatch_pixel": "minibatch_p2p",
                "memory_pixel": "memory_p2p", "memory_region": "memory_p2r"}
BUFFERS = ("pixel_queue", "region_queue", "pixel_queue_ptr", "region_queue_ptr")


def build(cfg, inp) -> CIRKD:
    pooling = cfg.get("pooling", False)
    if isinstance(pooling, bool):
        pooling = "avg2x2" if pooling else "none"
    return CIRKD(
        num_classes=cfg.get("num_classes", 1),
        s_channels=inp["s_feat"].shape[1], t_channels=inp["t_feat"].shape[1],
        lambda_kd=cfg.get("lambda_kd", 0.0), kd_temperature=cfg.get("kd_temperature", 1.0),
        lambda_minibatch_pixel=cfg.get("lambda_minibatch_pixel", 0.0),
        lambda_memory_pixel=cfg.get("lambda_memory_pixel", 0.0),
        lambda_memory_region=cfg.get("lambda_memory_region", 0.0),
        contrast_temperature=cfg.get("contrast_temperature", 0.1),
        contrast_kd_temperature=cfg.get("contrast_kd_temperature", 1.0),
        pixel_memory_size=cfg.get("pixel_memory_size", 20000),
        region_memory_size=cfg.get("region_memory_size", 2000),
        pixel_contrast_size=cfg.get("pixel_contrast_size"),
        region_contrast_size=cfg.get("region_contrast_size"),
        pixel_update_freq=cfg.get("pixel_update_freq", 16),
        fix_pixel_enqueue=cfg.get("fix_pixel_enqueue", False),
        group_size=cfg.get("group_size", 0), pooling=pooling,
        ignore_index=cfg.get("ignore_label", cfg.get("ignore_index", -1)))


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    method = build(cfg, inp).double().train()
    memory = method.memory
    if memory is not None:
        load_params(memory, case.get("params") or {})
        with torch.no_grad():
            for name in BUFFERS:
                if name in inp and hasattr(memory, name):
                    getattr(memory, name).copy_(inp[name])

    s_feat = leaf(inp["s_feat"])
    named = {"s_feat": s_feat}
    student = {"head_feat": s_feat}
    teacher = {"head_feat": leaf(inp["t_feat"], requires_grad=False)}
    if "s_logits" in inp:
        named["s_logits"] = student["logits"] = leaf(inp["s_logits"])
        teacher["logits"] = leaf(inp["t_logits"], requires_grad=False)
    labels = inp["labels"] if "labels" in inp else torch.zeros(s_feat.shape[0], 1, 1, dtype=torch.long)
    draws = {k: inp[k] for k in ("enqueue_pixel_pos", "pixel_index", "region_index") if k in inp}
    ctx = StepContext(student=SegOutputs(student.values(), student.keys()),
                      teacher=SegOutputs(teacher.values(), teacher.keys()),
                      labels=labels, iteration=1, max_iterations=1,
                      ignore_index=method.memory.ignore_index if memory is not None else -1,
                      extra={"cirkd_draws": draws})

    raw = method.raw_terms(ctx)
    weighted = method.weight_terms(raw)
    total = sum(weighted.values())
    outputs = {OUTPUT_NAMES[k]: v for k, v in raw.items()}
    outputs["weighted"] = total
    if memory is not None:
        named.update(dict(memory.named_parameters()))
    result = {"outputs": outputs, "grads": grads_of(total, named)}
    if memory is not None:
        result["state_after"] = {name: getattr(memory, name).detach().clone()
                                 for name in BUFFERS if hasattr(memory, name)}
    return result
