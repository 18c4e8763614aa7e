"""Stage 1, the catalog: the DuckDB store, registration and the inbox, batches, labels, failures, model registry.

The bottom layer: it imports only the shared modules at the top of ``ml/`` (config, taxonomy, metrics,
plots, thresholds). Every other stage reads and writes through it.
"""
