"""omnissl's graph plugin (registered through the `omnissl.modalities` entry point)."""
