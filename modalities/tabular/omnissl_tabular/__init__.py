"""omnissl's tabular plugin: typed-schema ingestion (CSV/Parquet/DataFrame), SCARF and VIME, MLP and
FT-Transformer encoders, and a label-scarce evaluation helper.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_tabular import augment, datasets, encoders, evaluation, objectives  # noqa: F401  (registers components)
