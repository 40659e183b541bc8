"""omnissl's graph plugin on PyTorch Geometric: TU / Planetoid / CSV data, GraphCL + GRACE augmentations,
GIN / GCN / GAT encoders, GraphCL, GRACE and GraphMAE objectives, and the published evaluation protocols.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_graph import augment, csv_graphs, data, dgi, encoders, evaluation, grace, graphcl, graphmae  # noqa: F401  (registers components)
