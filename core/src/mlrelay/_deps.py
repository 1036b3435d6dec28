"""Lazy imports of optional heavy libraries, with the extra to install when one is missing.

``import mlrelay`` must stay cheap: Airflow parses DAG files in fresh processes and pays for every
module-level import. So each step imports its library inside the function that needs it, through
``require``, which turns an ``ImportError`` into a ``MissingDependency`` naming the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mlrelay.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``MissingDependency`` telling which mlrelay extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(module, extra) from exc
