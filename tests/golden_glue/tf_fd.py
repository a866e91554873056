"""Golden glue for Tf-FD (shared/golden/tf_fd): features f1..fM, both loss forms, per-term values."""
import re

from losses.tf_fd import TfFDLoss

from .common import grads_of, leaf


def run_case(case):
    cfg, inp = case["config"], case["inputs"]
    names = sorted((k for k in inp if re.fullmatch(r"f\d+", k)), key=lambda k: int(k[1:]))
    feats = {k: leaf(inp[k]) for k in names}
    ordered = [feats[k] for k in names]
    train_kd = TfFDLoss(cfg["lambda_inter"], cfg["lambda_intra"], form="train_kd")(ordered)
    readme = TfFDLoss(cfg["lambda_inter"], cfg["lambda_intra"], form="readme")(ordered)
    outputs = {"loss": train_kd["loss"], "loss_readme": readme["loss"],
               "inter_mean": sum(train_kd["inter"]) / len(train_kd["inter"]),
               "intra_mean": sum(train_kd["intra"]) / len(train_kd["intra"])}
    for name, value in zip(names, train_kd["intra"]):
        outputs["intra_%s" % name] = value
    for (i, j), value in zip(train_kd["pairs"], train_kd["inter"]):
        outputs["inter_%s_%s" % (names[i], names[j])] = value
    grads = grads_of(train_kd["loss"], feats)
    for k, g in grads_of(readme["loss"], feats).items():
        grads["%s@loss_readme" % k] = g
    return {"outputs": outputs, "grads": grads}
