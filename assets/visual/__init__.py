"""Assets and checks of the Dagster group `visual` (their algorithms live in ``ml/visual/``)."""
