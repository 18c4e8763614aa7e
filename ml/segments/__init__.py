"""Stage 6, scenes: where in a video each category is, from the frame embeddings already stored.

Boundaries come from the 1 fps embeddings of the frame stage (no second decode), the student scores
each scene's frames with its own aggregation, scene thresholds are certified on gold scenes like the
video thresholds, and mid-roll ad breaks are the boundaries where the scenes' categories change.

May import every stage below it (catalog, frames, text, visual, fusion) and the shared modules.
"""
