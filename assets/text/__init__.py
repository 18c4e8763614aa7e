"""Assets and checks of the Dagster group `text` (their algorithms live in ``ml/text/``)."""
