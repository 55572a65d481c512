"""Sweep summaries: the rows read from a sweep's job directories, grouping and
statistics over seeds, and the tables (text, Markdown, CSV).
"""
