"""Golden glue for SAD (shared/golden/sad): features x1..xM, consecutive paths, with and without detach."""
import re

from losses.sad import SADLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    names = sorted((k for k in inp if re.fullmatch(r"x\d+", k)), key=lambda k: int(k[1:]))
    feats = {k: leaf(inp[k]) for k in names}
    ordered = [feats[k] for k in names]
    plain = SADLoss(weight=cfg["weight"], detach_target=False)(ordered)
    detached = SADLoss(weight=cfg["weight"], detach_target=True)(ordered)
    outputs = {"loss": plain["loss"]}
    for (earlier, later), value in zip(zip(names[:-1], names[1:]), plain["paths"]):
        outputs["path_%s_%s" % (earlier, later)] = value
    grads = grads_of(plain["loss"], feats)
    for k, g in grads_of(detached["loss"], feats).items():
        grads["%s@detach_target" % k] = g
    return {"outputs": outputs, "grads": grads}
