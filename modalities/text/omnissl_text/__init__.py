"""omnissl's text plugin (registered through the `omnissl.modalities` entry point)."""
