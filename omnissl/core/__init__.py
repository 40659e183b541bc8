"""Base layer: errors, the registries, recipe configs, shared types, safe YAML, data-root paths, collectives.

Imports nothing else from omnissl; every other layer may import it.
"""
