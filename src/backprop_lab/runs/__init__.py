"""Runs: building an experiment from a config, the engine that trains one run or a
sweep's lanes and writes their directories, resuming, loading a finished run back,
signals, and the environment a run records.
"""
