"""omnissl's time-series plugin: UCR/UEA `.ts`, npz/npy and CSV readers; batched augmentations (jitter, scaling,
magnitude/time warp, segment permutation, window crop, timestamp masking, channel dropout); TS2Vec's dilated CNN
and a patch transformer; the TS2Vec and TS-TCC objectives; the RBF-SVM evaluation of the published tables.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_timeseries import augment, data, encoders, svm, ts2vec, tstcc  # noqa: F401  (registers components)
from omnissl_timeseries import dae, tnc  # noqa: F401,E402  (denoising autoencoder, TNC; issue 23)
