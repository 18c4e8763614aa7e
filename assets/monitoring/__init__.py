"""Assets and checks of the Dagster group `monitoring` (their algorithms live in ``ml/monitoring/``)."""
