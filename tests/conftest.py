import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for p in (os.path.dirname(HERE), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long runs, opt-in with --runslow or -m slow")


def _share_the_cores_between_xdist_workers() -> None:
    """Under ``pytest -n N`` each worker gets its share of the cores, so in-process tests do not
    oversubscribe the machine (subprocess tests set OMP_NUM_THREADS themselves)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


_share_the_cores_between_xdist_workers()
