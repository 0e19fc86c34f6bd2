"""The what-if dashboard: two strategies side by side in the browser (``cxsim dashboard``).

``comparison`` holds the plain-Python part (the two-model wrapper, slider definitions, seed
checks, "save as variant", replications) and imports no web framework, so it is tested
without a browser. ``app`` is the Solara page, ``charts`` draws its images and ``server``
starts Solara for the command line. Nothing in the core package imports this package; the
command line imports it only when asked for the dashboard.
"""
