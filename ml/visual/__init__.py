"""Stage 4, the visual student: NeXtVLAD (and its mean-pool baseline) over frame embeddings, trained on
editor labels and the teacher's pseudo-labels; data module, export, torch-free ONNX predictor.

May import ``ml.catalog``, ``ml.frames``, ``ml.text`` and the shared modules.
"""
