"""The synthetic demo catalog (real encoded videos, multilingual titles) and its ground truth.

May import every stage below it; nothing imports it but the evaluation (``ml/evaluation/`` reads the
ground truth), the CLI and tests: no model ever sees the demo's true labels.
"""
