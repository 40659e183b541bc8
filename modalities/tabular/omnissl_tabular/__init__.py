"""omnissl's tabular plugin (registered through the `omnissl.modalities` entry point)."""
