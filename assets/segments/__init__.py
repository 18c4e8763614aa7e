"""Assets and checks of the Dagster group `segments` (their algorithms live in ``ml/segments/``)."""
