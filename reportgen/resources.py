"""Where the templates and static assets are, installed or in a checkout.

The repository keeps them in ``templates/`` at its top level; the wheel ships
them as ``reportgen/templates`` (see ``package-dir`` in pyproject.toml). An
editable install imports the package from the checkout, where they sit next
to it rather than inside it.
"""

from __future__ import annotations

from pathlib import Path

import reportgen

_PACKAGE = Path(reportgen.__file__).resolve().parent


def templates_dir() -> Path:
    """The directory holding the jinja2 templates and the static assets under ``assets/``."""
    for candidate in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("reportgen templates are missing from this installation")
