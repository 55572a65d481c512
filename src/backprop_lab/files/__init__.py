"""The run directory on disk: its file names, atomic writes, the lock that keeps a
second writer out, and checkpoints (a checked header and an equinox payload).
"""
