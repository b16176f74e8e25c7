"""The run directory: manifest, samples table, latent arrays, atomic writes, resume."""
