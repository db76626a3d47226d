"""reportgen: static reports of what the Gastown town reconciler saw and decided."""

__version__ = "0.1.0"
