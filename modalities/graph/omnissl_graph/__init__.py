"""omnissl's graph plugin on PyTorch Geometric: TU / Planetoid / CSV data, GraphCL + GRACE augmentations,
GIN / GCN / GAT encoders, GraphCL, InfoGraph, DGI, GRACE and GraphMAE objectives, and the published evaluation protocols.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_graph import augment, csv_graphs, data, dgi, encoders, evaluation, grace, graphcl, graphmae, infograph  # noqa: F401  (registers components)

# What the core cannot know about a PyG batch (it never imports torch_geometric): how many samples it holds, and
# which tensor says its device.
from omnissl.core.types import register_batch_size  # noqa: E402
from omnissl.objectives.multiview import register_first_tensor  # noqa: E402

register_batch_size(lambda x: hasattr(x, "num_graphs"), lambda x: int(x.num_graphs))
register_first_tensor(lambda x: hasattr(x, "x"), lambda x: x.x)
