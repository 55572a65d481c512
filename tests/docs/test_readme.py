"""The examples of README.md and of every page under docs/ run as written and print
what their comments say; every public function is shown at work; CI runs the
README's test command."""

import re
from pathlib import Path

import jax
import pytest

import backprop_lab

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
BLOCKS = [
    (f"{page.relative_to(ROOT)}[{i}]", block)
    for page in PAGES
    for i, block in enumerate(FENCE.findall(page.read_text()))
]
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
TRUTH = re.compile(r"\b(?:True|False)\b")


def _comment_values(block: str) -> tuple[list[str], list[str]]:
    """The numbers and the True/False words in the trailing comments of the block's
    print lines (a dtype name's digits, as in "float32", are not values)."""
    numbers, truths = [], []
    for line in block.splitlines():
        if "print(" in line and "#" in line:
            comment = re.sub(r"float\d+", "", line.split("#", 1)[1])
            numbers += NUMBER.findall(comment)
            truths += TRUTH.findall(comment)
    return numbers, truths


def _close(expected: str, printed: list[float]) -> bool:
    """Some printed number equals the comment's, to the comment's own decimals."""
    value = float(expected)
    decimals = len(expected.split(".")[1]) if "." in expected and "e" not in expected else 0
    tol = 0.5 * 10.0**-decimals if "." in expected else 0.0
    return any(abs(p - value) <= tol for p in printed)


def test_every_page_with_code_has_examples():
    pages = {name.split("[")[0] for name, _ in BLOCKS}
    assert len(BLOCKS) >= 15
    assert {"README.md", "docs/mathematics.md", "docs/python.md", "docs/runs.md"} <= pages


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for _, b in BLOCKS], ids=[name for name, _ in BLOCKS])
def test_example_prints_what_it_says(block, capsys):
    # As a user runs them: JAX's default float32 (the suite switches float64 on).
    with jax.enable_x64(False):
        exec(compile(block, "<docs example>", "exec"), {})
    out = capsys.readouterr().out
    printed = [float(n) for n in NUMBER.findall(out)]
    numbers, truths = _comment_values(block)
    missing = [n for n in numbers if not _close(n, printed)]
    assert not missing, f"commented values not printed: {missing}\n{out}"
    for word in set(truths):
        assert TRUTH.findall(out).count(word) >= truths.count(word), f"{word} not printed as often\n{out}"


def test_every_public_function_has_an_example():
    code = "\n".join(block for _, block in BLOCKS)
    functions = [
        name
        for name in backprop_lab.__all__
        if callable(getattr(backprop_lab, name)) and not isinstance(getattr(backprop_lab, name), type)
    ]
    assert "manual_grad" in functions and "MLP" not in functions
    missing = [name for name in functions if not re.search(rf"\b{name}\(", code)]
    assert not missing, f"public functions no example calls: {missing}"


def test_readme_is_short_and_its_links_exist():
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^(scripts/\w+)\s+#", README, flags=re.M)
    assert "scripts/test" in commands
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci == ["scripts/test"]
