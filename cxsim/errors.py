"""The errors a user sees as one line (``cxsim: error: ...``, exit status 2), in a module that
imports nothing, so the command line can name them without loading the model to start.

:class:`~cxsim.loading.ScenarioError` (a scenario that cannot be used) lives with the loader
that raises it.
"""


class PartError(Exception):
    """A part that cannot be used; the message names it and says why."""


class ResultsError(Exception):
    """A results folder that cannot be used as asked; the message is for the user."""
