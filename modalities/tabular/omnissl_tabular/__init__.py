"""omnissl's tabular plugin: typed-schema ingestion (CSV/Parquet/DataFrame), SCARF and VIME, MLP and
FT-Transformer encoders, and a label-scarce evaluation helper.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_tabular import augment, datasets, encoders, evaluation, objectives  # noqa: F401  (registers components)
from omnissl_tabular.data import bundle_from_frames  # noqa: F401,E402  (DataFrame ingestion from Python)
from omnissl_tabular.schema import TabularSchema  # noqa: F401,E402
from omnissl_tabular import dae  # noqa: F401,E402  (denoising autoencoder, issue 23)
from omnissl_tabular import shards  # noqa: F401,E402  (the Parquet row codec, issue 19)
