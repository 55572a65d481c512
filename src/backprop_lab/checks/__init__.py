"""Checks on a network: the gradient-agreement report (manual vs autodiff vs finite
differences, :func:`check_grads`), the summary's agreement fields, and evaluation
(loss and accuracy on a data set).

Modules: ``_report`` (the check), ``_result`` (the report it returns), ``_render`` (its
table and Markdown), ``_agreement`` (the fields a run's summary records), ``_evaluation``
(loss and accuracy).
"""
