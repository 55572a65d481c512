"""The README's examples run as written and print what their comments say; CI runs the README's test command."""

import re
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


def _expected_numbers(block: str) -> list[str]:
    """The numbers in the trailing comments of the block's print lines (a dtype name's
    digits, as in "float32", are not values)."""
    numbers = []
    for line in block.splitlines():
        if "print(" in line and "#" in line:
            numbers += NUMBER.findall(re.sub(r"float\d+", "", line.split("#", 1)[1]))
    return numbers


def _close(expected: str, printed: list[float]) -> bool:
    """Some printed number equals the comment's, to the comment's own decimals."""
    value = float(expected)
    decimals = len(expected.split(".")[1]) if "." in expected and "e" not in expected else 0
    tol = 0.5 * 10.0**-decimals if "." in expected else 0.0
    return any(abs(p - value) <= tol for p in printed)


def test_readme_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_prints_what_it_says(index, capsys):
    # As a user runs them: JAX's default float32 (the suite switches float64 on).
    with jax.enable_x64(False):
        exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})
    printed = [float(n) for n in NUMBER.findall(capsys.readouterr().out)]
    missing = [n for n in _expected_numbers(BLOCKS[index]) if not _close(n, printed)]
    assert not missing, f"README block {index}: commented values not printed: {missing}"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^(scripts/\w+)\s+#", README, flags=re.M)
    assert "scripts/test" in commands
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci == ["scripts/test"]
