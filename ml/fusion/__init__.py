"""Stage 5, fusion: per-category thresholds certified on gold, combining rules, the predictions store.

May import every stage below it (catalog, frames, text, visual) and the shared modules.
"""
