"""Stage 3, the text teacher: features (multilingual e5), calibrated per-category heads, pseudo-labels.

May import ``ml.catalog``, ``ml.frames`` (thumbnails for spot checks) and the shared modules.
"""
