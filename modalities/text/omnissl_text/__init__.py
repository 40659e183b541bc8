"""omnissl's text plugin: text files / AG News / SST-2 datasets, trained or local HF tokenisers with dynamic-padding
collate, batched token augmentations, and BERT / GPT-2 / local-HF-directory encoders built on ``transformers``.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be. The text objectives
(MLM, causal LM, SimCSE) live in the core: they work on any discrete token sequence / pooled encoder.
"""

from omnissl_text import augment, captions, collate, data, encoders, tokenization  # noqa: F401  (registers components)
