"""The benchmarks are the package ``benchmarks/`` at the repository's root, not installed
with the library: its tests import it from there, wherever pytest was started."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
