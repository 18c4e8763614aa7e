"""Serving: one file through both models and fusion (``classify``), and why a video got its categories
(``explain``). Near the top: it may import every stage, never ``ml.demo``.
"""
