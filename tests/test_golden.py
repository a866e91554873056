"""Every copied golden case (tests/data/golden/<method>/*.pt) through tests/golden.py::run_case."""
import os

import pytest

from golden import all_case_paths, compare, load_case, run_case

CASES = all_case_paths()


@pytest.mark.parametrize("path", CASES, ids=[os.path.relpath(p, os.path.dirname(os.path.dirname(p))) for p in CASES])
def test_golden_case(path):
    case = load_case(path)
    problems = compare(case, run_case(case))
    assert not problems, "\n".join(problems)


def test_golden_cases_present():
    assert len(CASES) >= 2, "copy the shared golden cases into tests/data/golden"
