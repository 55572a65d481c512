"""``python -m backprop_lab_bench``: what ``scripts/bench`` runs."""

import sys

from .runner import main

sys.exit(main())
