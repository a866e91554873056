"""Synthetic-data generation rate (images per second) for each format.

    python benchmarks/bench_synthetic.py [--format cityscapes] [--num 200] [--size 512 1024] [--workers 2]

Writes into a temporary folder (deleted afterwards) and prints one line per format; the
target is 200 Cityscapes-format 512x1024 images in under a minute on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from typing import List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.synthetic import FORMAT_NAMES, generate  # noqa: E402


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=list(FORMAT_NAMES) + ["all"], default="cityscapes")
    parser.add_argument("--num", type=int, default=200, help="images per format")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 1024), metavar=("H", "W"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    formats = FORMAT_NAMES if args.format == "all" else (args.format,)
    print("%-15s %7s %11s %8s %9s %10s" % ("format", "images", "size", "workers", "seconds", "images/s"))
    for fmt in formats:
        out = tempfile.mkdtemp(prefix="segkd_bench_")
        try:
            summary = generate(fmt, out, args.num, 0, args.size, args.seed, args.workers)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print("%-15s %7d %11s %8d %9.1f %10.2f" % (fmt, args.num, "%dx%d" % tuple(args.size), args.workers,
                                                   summary["seconds"], summary["images_per_second"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
