"""Synthetic media for guard's demo, tests and benchmarks (not part of the runtime package).

:mod:`guard_synth.broadcast` makes deterministic synthetic broadcasts (sports, concerts, news …)
and pirated transformations of them; :mod:`guard_synth.encode` writes them to files with PyAV.
Installed with guard's ``demo`` extra (scikit-image's photos).
"""
