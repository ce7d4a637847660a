"""Lazy exports for a package's ``__init__``: names imported on first use, so importing the package (and the
one study or analysis a command needs) does not import every sibling module."""

from __future__ import annotations

import importlib


def exports(package: str, where: dict[str, str]):
    """(``__getattr__``, ``__dir__``) for ``package`` that import each name of ``where`` (name -> module) on
    first use and keep it in the package's namespace."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
