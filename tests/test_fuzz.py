"""Fuzzing, the fast subset: broken files of every category end in one clear line or a run.

The long version is ``python -m reliability.fuzz`` (10,000 cases; see reliability/fuzz.py).
Here a seeded selection runs through the same workers: the first case of the series in each
category (so every kind of mistake is tried), each with a timeout and a memory limit.
"""

from __future__ import annotations

import pytest

from reliability.cases import CATEGORIES, Case, one
from reliability.fuzz import FAILURES, judge_message, run_cases

SEED = 2026


def _selection() -> list[int]:
    """Indices of the first case of each category in the series (of any kind)."""
    wanted = {c for cats in CATEGORIES.values() for c in cats}
    chosen, i = [], 0
    while wanted and i < 5000:
        category = one(i, SEED).category.split(":")[0]
        if category in wanted:
            wanted.discard(category)
            chosen.append(i)
        i += 1
    return chosen


def test_every_category_of_broken_file_is_refused_in_one_line_or_runs():
    jobs = _selection()
    results = list(run_cases(jobs, SEED, workers=2, timeout=60))
    assert len(results) == len(jobs)
    outcomes = {r.outcome for r in results}
    assert {"rejected", "ran"} <= outcomes  # the selection both breaks files and runs some
    failed = [f"case {r.id} ({r.kind}, {r.category}): {r.outcome}: {r.message[-400:]}"
              for r in results if r.outcome in FAILURES]  # fmt: skip
    assert not failed, "\n".join(failed)


def _case(several: bool = False, touched: str | None = "strategy.detection") -> Case:
    return Case(0, "scenario", "wrong_type", {"case.yaml": b""}, [], touched, several)


@pytest.mark.parametrize(
    ("stderr", "problem"),
    [
        ("cxsim: error: /t/case.yaml:3: strategy.detection: expected a number, found 'x'\n", None),
        ("Traceback (most recent call last):\n  ...\n", "traceback"),
        ("cxsim: error: /t/case.yaml:3: strategy.detection: bad\nmore text\n", "2 lines"),
        ("cxsim: error: /t/case.yaml:3: time.horizon: expected a whole number\n", "does not name"),
        ("cxsim: error: /t/other.yaml:3: strategy.detection: bad\n", "names no file"),
        ("cxsim: error: /t/case.yaml: not valid YAML: nested too deeply\n", "without its line"),
        ("cxsim: error: /t/case.yaml:3: strategy.detection: '" + "x" * 600 + "'\n", "a line of"),
    ],
)
def test_the_judge_of_messages(stderr, problem):
    found = judge_message(_case(), 2, stderr)
    assert (found is None) if problem is None else (problem in found), found


def test_the_judge_takes_one_located_line_per_problem():
    two = ("cxsim: error: /t/case.yaml:3: strategy.detection: expected a number\n"
           "/t/case.yaml:4: strategy.outreach: expected a number\n")  # fmt: skip
    assert judge_message(_case(), 2, two) is None
    assert judge_message(_case(), 1, two) == "exit status 1"
