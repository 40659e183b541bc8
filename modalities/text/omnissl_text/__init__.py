"""omnissl's text plugin: text files / AG News / SST-2 datasets, trained or local HF tokenisers with dynamic-padding
collate, batched token augmentations, and BERT / GPT-2 / local-HF-directory encoders built on ``transformers``.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be. The text objectives
(MLM, causal LM, SimCSE) live in the core: they work on any discrete token sequence / pooled encoder.
"""

from omnissl_text import augment, baselines, captions, collate, data, encoders, tokenization  # noqa: F401  (registers components)

# The core's token objectives (MLM, causal LM) read this plugin's batches through a hook: they never name its keys.
from omnissl.objectives.mlm import register_token_format  # noqa: E402


def _split_token_dict(x: dict):  # -> (ids, attention, rebuild), see omnissl.objectives.mlm.token_batch
    import torch

    ids = x["input_ids"].long()
    attention = x.get("attention_mask")
    attention = torch.ones_like(ids) if attention is None else attention.long()
    return ids, attention, lambda new_ids, mask: {"input_ids": new_ids, "attention_mask": mask}


register_token_format(lambda x: isinstance(x, dict) and "input_ids" in x, _split_token_dict)
