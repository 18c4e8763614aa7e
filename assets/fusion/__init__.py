"""Assets and checks of the Dagster group `fusion` (their algorithms live in ``ml/fusion/``)."""
