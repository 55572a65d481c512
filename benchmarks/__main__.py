"""``python -m benchmarks``: what ``scripts/bench`` runs."""

import sys

from .runner import main

sys.exit(main())
