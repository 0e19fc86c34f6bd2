"""Reliability checks that run outside the test suite: fuzzing cxsim's input files at scale.

``python -m reliability.fuzz`` generates thousands of broken and odd scenario, variant and sweep
files (:mod:`reliability.cases`), runs each through the ``cxsim`` command line in worker
processes that a runaway case cannot take down (:mod:`reliability.fuzz`), runs every accepted
one briefly on both engines, and prints counts by outcome. ``tests/test_fuzz.py`` runs a fast
seeded subset of the same cases in the test suite.
"""
