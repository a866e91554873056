"""Argument parsing shared by the entry points: errors are one line (no usage dump), exit code 2."""
from __future__ import annotations

import argparse
import sys


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.exit(2, "%s: error: %s (see --help)\n" % (self.prog, message))


def make_parser(description: str) -> argparse.ArgumentParser:
    return OneLineErrorParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def fail(message: str, code: int = 1) -> int:
    print("error: %s" % message, file=sys.stderr)
    return code
