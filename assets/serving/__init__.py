"""Assets of the Dagster group `serving` (their algorithms live in ``ml/serving/``)."""
