"""The package's lazy table: ``import backprop_lab`` (and configure_cpu) starts no JAX, every
public name resolves, and the type checkers' re-exports name the same (module, name) pairs."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_importing_the_package_and_configuring_xla_starts_no_jax():
    out = _fresh(
        "import sys, backprop_lab as bl; bl.configure_cpu(); "
        "print(sorted(m for m in ('jax', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    assert out == "[]"


def test_lazy_names_resolve_and_are_listed():
    import backprop_lab as bl

    for name in bl._EXPORTS:
        assert getattr(bl, name) is not None
    assert set(bl._EXPORTS) <= set(dir(bl))
    assert bl.__all__ == sorted(bl._EXPORTS)
    from backprop_lab import MLP, reference  # noqa: F401  (the from-import form)

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = bl.nope


def test_lazy_table_matches_the_type_checking_imports():
    """The ``X as X`` lines for type checkers name the same (module, name) pairs as the table."""
    import backprop_lab as bl

    tree = ast.parse(Path(bl.__file__).read_text())
    (block,) = [
        n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"
    ]
    pairs = {}
    for node in block.body:
        for alias in node.names:
            assert alias.asname == alias.name  # the explicit re-export form
            pairs[alias.name] = node.module.lstrip(".") if node.module else alias.name
    assert pairs == bl._EXPORTS
