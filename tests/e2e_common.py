"""Shared pieces of the end-to-end tests: tiny synthetic data and running the real CLIs in-process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import List, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for 2 CPU cores: 4 train / 2 val images of 96x192, crops of 64x64.
TINY = ["--dataset", "citys", "--crop-size", "64", "64", "--batch-size", "2", "--workers", "0",
        "--log-iter", "1", "--no-progress", "--seed", "0"]


def make_citys(root: str, num_train: int = 4, num_val: int = 2, size=(96, 192)) -> str:
    from datasets.synthetic import generate
    generate("cityscapes", root, num_train=num_train, num_val=num_val, size=tuple(size), seed=0, workers=1)
    return root


def train(argv: List[str]) -> int:
    import train_kd
    return train_kd.main(argv)


def evaluate(argv: List[str]) -> int:
    import eval as eval_script
    return eval_script.main(argv)


def run_cli(script: str, argv: List[str], env=None, timeout: int = 300) -> Tuple[int, str, str]:
    """Run a script in a fresh interpreter (for exit codes, stderr and launchers)."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    full_env.update(env or {})
    proc = subprocess.run([sys.executable] + ([script] if script.endswith(".py") else ["-m", script]) + argv,
                          cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def student_weights(save_dir: str, name: str) -> dict:
    return torch.load(os.path.join(save_dir, name), map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict, atol: float = 0.0, rtol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(a[k].double(), b[k].double(), atol=atol, rtol=rtol), \
                "%s differs (worst tensor diff %.3g)" % (k, worst)
        else:
            assert torch.equal(a[k], b[k]), k


def last_error_line(stderr: str) -> str:
    lines = [l for l in stderr.strip().splitlines() if l.strip()]
    return lines[-1] if lines else ""
