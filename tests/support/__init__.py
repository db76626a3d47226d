"""Test support: town builders, fixtures, the golden harness and the hostile-input corpus.

Test-only code lives here rather than in the ``reportgen`` package, so it is not
shipped in the wheel (``tests/test_packaging.py`` checks that it is not).
"""
