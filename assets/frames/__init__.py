"""Assets and checks of the Dagster group `frames` (their algorithms live in ``ml/frames/``)."""
