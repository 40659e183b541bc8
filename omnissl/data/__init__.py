"""Data layer: in-memory tensor datasets and collates, paired datasets, hints for missing files."""
