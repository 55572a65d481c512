"""Data sets: the :class:`Dataset` type, the registry of built-in sets (gates, the
notes' examples, moons, circles, digits), seeded train/test splits, and files of the
user's own (.npz, .npy, .csv).

Modules: ``_dataset`` (the type), ``_registry`` (names → builders, :func:`load_dataset`),
``_files`` (reading and checking files), ``_split`` (the stratified split).
"""
