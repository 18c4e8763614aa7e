"""Pure-Python algorithms of vidcat: catalog, taxonomy, decoding, models, metrics.

Nothing here imports dagster, so every algorithm can be tested and reused alone.
Heavy libraries (torch, onnxruntime, sklearn) are imported inside the functions that need them.
"""
