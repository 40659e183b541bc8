"""omnissl's timeseries plugin (registered through the `omnissl.modalities` entry point)."""
