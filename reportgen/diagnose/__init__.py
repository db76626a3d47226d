"""Diagnosis: what is wrong with a town, judged from its tick record and its state.

``episodes`` groups invariant violations into episodes (the unit an on-call
engineer reasons about). Imports only :mod:`reportgen.town` and the standard
library, so alerting and the report can both use it.
"""
