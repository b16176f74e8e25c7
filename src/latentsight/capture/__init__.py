"""Running the model over every sample: hooks, pooling, per-sample loss, streaming to the store."""
