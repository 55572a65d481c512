"""Worked examples: every step of one forward and backward pass of a small network
(net, out, δ, δ·outᵀ, the updated W), as the notes wrote them by hand, and their text
and Markdown renderings.
"""
