"""Print the mIoU of several eval.py results side by side.

    python tools/compare_results.py teacher=work_dirs/a/eval/results.json student=work_dirs/b/eval/results.json
    python tools/compare_results.py --gap teacher=T.json baseline=B.json distilled=D.json

``--gap``: the three results are teacher, baseline student, distilled student; also prints how
much of the teacher-baseline gap the distillation closed.
"""
from __future__ import annotations

import json
import sys
from typing import List


def main(argv: List[str]) -> int:
    gap = "--gap" in argv
    argv = [a for a in argv if a != "--gap"]
    if not argv or (gap and len(argv) != 3):
        print("usage: compare_results.py [--gap] NAME=results.json [NAME=results.json ...] "
              "(--gap: exactly teacher, baseline, distilled)", file=sys.stderr)
        return 2
    rows = []
    for item in argv:
        name, _, path = item.partition("=")
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as exc:
            print("error: cannot read %s (%s)" % (path, exc), file=sys.stderr)
            return 1
        rows.append((name, result))
    print("\n%-28s %-26s %8s %8s" % ("run", "model", "mIoU", "pixAcc"))
    for name, r in rows:
        print("%-28s %-26s %8.2f %8.2f" % (name, "%s/%s" % (r["model"], r["backbone"]), 100 * r["mIoU"], 100 * r["pixAcc"]))
    print("protocol: %s; %s %s, %d images" % (rows[0][1]["protocol"], rows[0][1]["dataset"], rows[0][1]["split"],
                                               rows[0][1]["images"]))
    if gap:
        teacher, baseline, distilled = (100 * r["mIoU"] for _, r in rows)
        text = "distillation: %+.2f mIoU over the baseline; teacher - baseline = %+.2f" % (
            distilled - baseline, teacher - baseline)
        if teacher > baseline:
            text += "; gap closed %.0f%%" % (100 * (distilled - baseline) / (teacher - baseline))
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
