"""The latent map: projection, clustering and the shared nearest-neighbour graph."""
