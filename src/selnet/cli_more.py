"""Registration point for the profile and audit commands (kept apart so cli.py stays small)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, common: Callable[[argparse.ArgumentParser], None],
             load: Callable[[argparse.Namespace], Any],
             parse_bools: Callable[[list[str] | None], dict[str, bool]]) -> None:
    """Add later commands here."""
    return None
