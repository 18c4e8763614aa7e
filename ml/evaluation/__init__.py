"""The measurements the project reports: the locked test, the student's architectures, ablations and
label budgets, the text model on real data, and the reports `vidcat report` and `vidcat eval-visual` print.

The top layer: it measures the stages below it and may read the demo's ground truth (``ml/demo/``);
no stage imports it, so nothing that trains or scores can see how it is measured.
"""
