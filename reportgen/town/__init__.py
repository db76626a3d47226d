"""The town engine: a faithful port of the upstream Gastown reconciler on an explicit clock.

See docs/design.md for how the modules meet.
"""
