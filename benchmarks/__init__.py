"""The benchmarks of backprop-lab's performance targets, beside the library, not in it.

They live in the repository's ``benchmarks/`` and are not installed with the
package: ``scripts/bench`` (or ``python -m benchmarks`` from the repository's
root) runs them:
:mod:`.runner` (table, JSON, command line), :mod:`.targets` (T1–T6 inside one
interpreter), :mod:`.processes` (T7, T9–T11: plain scripts and whole commands
timed from outside) and :mod:`.timing` (interleaved repeats, medians, rows).
See docs/benchmarks.md. Importing this package imports neither JAX nor the
library.
"""
