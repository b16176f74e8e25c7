"""Built-in demo: synthetic shapes data with planted failure modes and a small CNN."""
