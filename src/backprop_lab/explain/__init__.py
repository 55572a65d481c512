"""Worked examples: every step of one forward and backward pass of a small network
(net, out, δ, δ·outᵀ, the updated W), as the notes wrote them by hand, and their text
and Markdown renderings.

Modules: ``_explain`` (the step, its types and size limits), ``_formulas`` (the layer
formulas, exact or rounded as on paper), ``_document`` (what is written, in the notes'
symbols), ``_render`` (the terminal text and the Markdown).
"""
