"""Data sets: the :class:`Dataset` type, the registry of built-in sets (gates, the
notes' examples, moons, circles, digits), seeded train/test splits, and files of the
user's own (.npz, .csv).

Modules: ``_dataset`` (the type), ``_registry`` (names → builders, :func:`load_dataset`),
``_assemble`` (arrays → a data set), ``_files`` (a file as a data set), ``_readers`` (reading a
file's arrays), ``_labels`` (the class-label rule), ``_split`` (the stratified split).
"""
