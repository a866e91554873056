"""Validation during training: run the evaluator, keep the best by its key, write results.json.

``<save-dir>/results.json`` holds every figure the evaluator returns for the last and the best
validation (with their iterations), the key the best is chosen by, and the history of scalar
figures; it is rewritten atomically after every validation and continued on resume.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Tuple

from utils.evaluation import evaluate


def scalar_figures(figures: Dict[str, object]) -> Dict[str, float]:
    return {k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Validator:
    def __init__(self, evaluator, val_loader, device, amp: str, save_dir: str, is_main: bool,
                 on_image=None, protocol: Optional[Dict[str, object]] = None) -> None:
        self.evaluator = evaluator
        self.protocol = dict(protocol or {})     # evaluate()'s mode / crop / stride / slide_pad
        self.best_key = evaluator.best_key
        self.val_loader = val_loader
        self.device = device
        self.amp = amp
        self.is_main = is_main
        self.on_image = on_image
        self.path = os.path.join(save_dir, "results.json")
        self.best_score = 0.0
        self.best: Optional[Dict[str, object]] = None
        self.history: List[Dict[str, float]] = []

    def restore(self, best_score: float, start_iteration: int) -> None:
        """On resume: the saved best, and the history up to the resumed iteration."""
        self.best_score = best_score
        if os.path.isfile(self.path):
            try:
                with open(self.path) as handle:
                    saved = json.load(handle)
            except (OSError, ValueError):
                return
            self.history = [h for h in saved.get("history", []) if h.get("iteration", 0) <= start_iteration]
            best = saved.get("best")
            if best and best.get("iteration", 0) <= start_iteration:
                self.best = best

    def run(self, model, iteration: int) -> Tuple[Dict[str, object], bool]:
        """Validate; returns the evaluator's figures and whether the best key improved."""
        figures = evaluate(model, self.val_loader, self.evaluator, self.device, amp=self.amp,
                           on_image=self.on_image if self.is_main else None, **self.protocol)
        if self.best_key not in figures:
            raise ValueError("the evaluator's best_key %r is not among its figures %s"
                             % (self.best_key, sorted(figures)))
        score = float(figures[self.best_key])
        if math.isnan(score):
            score = 0.0
        # The first validation is the best so far even at 0 (an untrained model still gets a best file).
        improved = self.best is None or score > self.best_score
        self.best_score = max(self.best_score, score)
        record = dict(figures, iteration=iteration)
        if improved:
            self.best = record
        self.history.append(dict(scalar_figures(figures), iteration=iteration))
        if self.is_main:
            self._write(record)
        return figures, improved

    def _write(self, last: Dict[str, object]) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        data = {"best_key": self.best_key, "best_score": self.best_score, "best": self.best, "last": last,
                "history": self.history}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(data, handle, indent=1)
        os.replace(tmp, self.path)
