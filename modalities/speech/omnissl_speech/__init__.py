"""omnissl's speech plugin (registered through the `omnissl.modalities` entry point)."""
