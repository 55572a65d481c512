"""Shared test helpers: the notes' printed numbers, the scale-out worker."""
