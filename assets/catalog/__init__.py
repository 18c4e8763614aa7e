"""Assets and checks of the Dagster group `catalog` (their algorithms live in ``ml/catalog/``)."""
