"""Application workflows over a recipe or a run directory: train + evaluate, compare, export, listing."""
