"""omnissl's speech plugin: audio datasets (FSDD, folders, manifests), log-mel + SpecAugment, waveform
augmentations, wav2vec 2.0 / spectrogram-patch / log-mel CNN encoders and the wav2vec 2.0 objective.

Loaded through the ``omnissl.modalities`` entry point (name ``speech``), exactly as a third-party plugin would be.
"""

from omnissl_speech import augment, data, encoders, features, wav2vec2  # noqa: F401  (registers components)
from omnissl_speech import hf_audio  # noqa: F401  (public backbones, issue 21)
from omnissl_speech import hubert  # noqa: F401,E402  (HuBERT, issue 23)
