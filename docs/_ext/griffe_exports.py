"""A griffe extension: the public names of ``backprop_lab`` as its lazy table says.

``backprop_lab/__init__.py`` exports its names through ``_EXPORTS`` (public name ->
defining submodule) and PEP 562's ``__getattr__``, which static analysis cannot
follow. This extension reads the table from the source and makes each public name an
alias of its definition, so ``::: backprop_lab.MLP`` documents ``MLP`` under its
public path and cross-references to ``backprop_lab.NAME`` resolve.
"""

from __future__ import annotations

import ast
from typing import Any

import griffe


def exports_table(source: str) -> dict[str, str]:
    """The ``_EXPORTS`` dict literal of the package's ``__init__`` source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in targets):
                return ast.literal_eval(node.value)
    raise ValueError("backprop_lab/__init__.py has no _EXPORTS table")


class PublicExports(griffe.Extension):
    """Replace the package's members named in ``_EXPORTS`` by aliases of their definitions."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.path != "backprop_lab" or pkg.filepath is None:
            return
        for name, submodule in exports_table(pkg.filepath.read_text()).items():
            if name == submodule:
                continue  # the submodule itself (``reference``) is already a member
            pkg.set_member(name, griffe.Alias(name, f"backprop_lab.{submodule}.{name}", parent=pkg))
