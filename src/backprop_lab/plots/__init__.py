"""Plots: a run's loss curve and gradient norms, a sweep's summary plot, and the
worker processes that draw them while a run goes on. matplotlib is imported only where
a figure is drawn.
"""
