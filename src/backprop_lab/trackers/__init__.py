"""Experiment trackers (csv, TensorBoard, MLflow, Weights & Biases): one class per
tracker behind the :class:`Tracker` interface, and the registry that builds them from
the ``logger`` config. Each tracker's package is imported only when it is chosen.
"""
