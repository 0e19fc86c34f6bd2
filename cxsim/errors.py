"""The errors a user sees as one line (``cxsim: error: ...``, exit status 2), in a module that
imports nothing of cxsim's, so the command line can name them without loading the model to start
(it starts the pool's fork server first, see :func:`cxsim.cli.main`).

:class:`ScenarioError` (a scenario that cannot be used) is raised by the loader,
:mod:`cxsim.loading`, and can be imported from there too.
"""

import re


class ScenarioError(Exception):
    """A scenario that cannot be used; the message is meant for the user as it is.

    A quoted value in it longer than a line allows (a pasted paragraph, a million digits) is
    cut in the middle, and so is a number of more than 60 digits, so that every problem stays
    one readable line.
    """

    def __init__(self, message: str) -> None:
        message = _QUOTED.sub(_cut_quoted, message)
        super().__init__(_DIGITS.sub(lambda m: f"{m[0][:20]}... ({len(m[0])} digits)", message))


_DIGITS = re.compile(r"\d{60,}")
_QUOTED = re.compile(r"'[^'\n]{100,}'" + r'|"[^"\n]{100,}"')


def _cut_quoted(match: re.Match) -> str:
    text = match.group(0)
    return f"{text[:60]}...{text[-20:]}"


class UsageError(Exception):
    """A command-line mistake (an option's value, a missing argument); printed as it is."""


class PartError(Exception):
    """A part that cannot be used; the message names it and says why."""


class ResultsError(Exception):
    """A results folder that cannot be used as asked; the message is for the user."""
