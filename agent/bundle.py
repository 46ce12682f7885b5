"""Where the files that ship beside the code live: the repository in a checkout, the bundle's folder
when frozen by PyInstaller (``sys._MEIPASS``).

Why one helper: ``playbooks/``, ``ui/`` and ``packaging/icons/`` are read by several modules, and each
must find them both in a checkout and in the one-folder bundle. The spec (pyinstaller.spec) copies
each of them to the same relative path inside the bundle, so one rule covers every case.
"""

from __future__ import annotations

import sys
from pathlib import Path

_REPOSITORY = Path(__file__).resolve().parent.parent


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return getattr(sys, "_MEIPASS", None) is not None


def bundled_path(relative: str) -> Path:
    """``relative`` (e.g. ``"playbooks"``, ``"ui"``, ``"packaging/icons"``) under the bundle when frozen,
    else under the repository root. Nothing is checked: callers report a missing folder themselves."""
    bundle = getattr(sys, "_MEIPASS", None)
    return (Path(bundle) if bundle else _REPOSITORY) / relative
