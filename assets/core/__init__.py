"""The Dagster glue every asset shares: the `vidcat` resource, the batch partitions, CPU metering and
check results. It sits below the asset groups and above `ml/`: it imports neither an asset group nor
`orchestration/`, so assets can import it and `orchestration/` can assemble assets without a circle."""
