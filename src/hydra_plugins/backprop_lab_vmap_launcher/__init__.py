"""Hydra launcher ``hydra/launcher=vmap``: a sweep over learning rates and seeds as one vmapped program."""
