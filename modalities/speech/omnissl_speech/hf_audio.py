"""``hf_audio``: a ``transformers`` speech/audio encoder — wav2vec 2.0 (Baevski et al., 2020), HuBERT (Hsu et al.,
2021), WavLM, AST (Gong et al., 2021) or the Whisper encoder (Radford et al., 2022) — from a local model folder
(``save_pretrained`` layout with ``preprocessor_config.json``) or, with ``hub: true``, a Hub id. Without ``path``
it is a small random model of the chosen family (the offline default the registry tests use).

Input: the raw audio batch ``{"wave": (B, T) float, "padding_mask": (B, T) bool}`` at the data's ``sample_rate``.
Inside: each utterance's valid samples are resampled to the checkpoint's rate and passed through the
checkpoint's **own feature extractor** (``Wav2Vec2FeatureExtractor`` normalisation, AST's Kaldi fbank, Whisper's
log-mel), so the features are exactly what the model was trained on and an export loads back to the same
embeddings. Output: ``tokens (B, F, D)`` (AST: patch tokens, its two class tokens removed), ``padding_mask (B, F)``
for padded frames, ``pooled (B, D)`` = mean over valid frames (``pool: mean``) or AST's class-token pooler
(``pool: cls``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from omnissl.core.errors import ConfigError
from omnissl.core.model_folders import error_summary, hub_or_local
from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput
from omnissl_speech.features import as_audio

Architecture = Literal["wav2vec2", "hubert", "ast", "whisper"]
WAVE_MODELS = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")
SUPPORTED = (*WAVE_MODELS, "audio-spectrogram-transformer", "whisper")


class HFAudioEncoder(Encoder):
    """A ``transformers`` audio model + its feature extractor as an omnissl encoder (see the module doc)."""

    output_kinds = frozenset({"pooled", "tokens"})
    modality = "speech"

    def __init__(self, model: Any, extractor: Any, *, sample_rate: int, pool: Literal["mean", "cls"],
                 source: str) -> None:
        super().__init__()
        self.model, self.extractor, self.sample_rate, self.source = model, extractor, sample_rate, source
        self.model_type = str(model.config.model_type)
        if pool == "cls" and self.model_type != "audio-spectrogram-transformer":
            raise ConfigError(f"encoder.pool: 'cls' needs a class token (AST); {self.model_type} pools 'mean'")
        self.pool = pool
        self.embed_dim = int(getattr(model.config, "hidden_size", 0) or model.config.d_model)
        self.target_rate = int(extractor.sampling_rate)
        self.input_contract = {"modality": "speech", "input": "{'wave': (B, T) float, 'padding_mask': (B, T) bool}",
                               "sample_rate": sample_rate, "model_sample_rate": self.target_rate,
                               "feature_extractor": type(extractor).__name__}

    def _features(self, x: Any) -> tuple[dict[str, Tensor], Tensor]:
        """The feature extractor's tensors on the batch's device and the valid sample count per utterance."""
        from torchaudio.functional import resample

        wave, padding = as_audio(x)
        lengths = (~padding).sum(dim=1)
        clips = [wave[i, : int(n)] for i, n in enumerate(lengths)]
        if self.sample_rate != self.target_rate:
            clips = [resample(c, self.sample_rate, self.target_rate) for c in clips]
        lengths = torch.tensor([c.numel() for c in clips])
        kwargs: dict[str, Any] = {"sampling_rate": self.target_rate, "return_tensors": "pt"}
        if self.model_type in WAVE_MODELS:
            kwargs.update(padding=True, return_attention_mask=True)
        elif self.model_type == "whisper":
            kwargs.update(return_attention_mask=True)
        inputs = self.extractor([c.detach().cpu().float().numpy() for c in clips], **kwargs)
        return {k: v.to(wave.device) for k, v in inputs.items()}, lengths.to(wave.device)

    def forward(self, x: Any) -> EncoderOutput:
        inputs, lengths = self._features(x)
        if self.model_type in WAVE_MODELS:
            # Group-norm checkpoints (wav2vec2-base) were trained without attention masks: HF's extractor says so.
            mask = inputs["attention_mask"] if getattr(self.extractor, "return_attention_mask", True) else None
            hidden = self.model(inputs["input_values"], attention_mask=mask).last_hidden_state
            frames = self.model._get_feat_extract_output_lengths(lengths)
        elif self.model_type == "whisper":
            hidden = self.model.encoder(inputs["input_features"]).last_hidden_state
            # conv2 has stride 2: encoder frame j covers log-mel frames 2j, 2j+1 (hop 160 samples)
            frames = ((lengths // int(self.extractor.hop_length)) + 1) // 2
        else:  # AST: two class tokens, then patches; its extractor pads/cuts every clip to max_length frames
            out = self.model(inputs["input_values"])
            tokens = out.last_hidden_state[:, 2:]
            pooled = out.pooler_output if self.pool == "cls" else tokens.mean(dim=1)
            return EncoderOutput(pooled=pooled, tokens=tokens)
        frames = frames.clamp(1, hidden.shape[1]).to(hidden.device)
        padding = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0) >= frames.unsqueeze(1)
        keep = (~padding).to(hidden.dtype).unsqueeze(-1)
        pooled = (hidden * keep).sum(dim=1) / keep.sum(dim=1)
        return EncoderOutput(pooled=pooled, tokens=hidden, padding_mask=padding)

    def export_pretrained(self, out_dir: Path) -> dict[str, Any]:
        """``out_dir/hf_model``: ``save_pretrained`` of the model and of its feature extractor."""
        folder = out_dir / "hf_model"
        self.model.save_pretrained(str(folder))
        self.extractor.save_pretrained(str(folder))
        body = "model.encoder(**inputs)" if self.model_type == "whisper" else "model(**inputs)"
        pool = "last_hidden_state[:, 2:].mean(1)" if self.model_type == "audio-spectrogram-transformer" \
            else "last_hidden_state  (mean over the valid frames)"
        if self.pool == "cls":
            pool = "pooler_output"
        return {"library": "transformers", "folder": "hf_model", "input": self.input_contract,
                "load": ("from transformers import AutoModel, AutoFeatureExtractor\n"
                         "model = AutoModel.from_pretrained('hf_model').eval()\n"
                         "extractor = AutoFeatureExtractor.from_pretrained('hf_model')\n"
                         f"inputs = extractor(waves_at_{self.target_rate}_hz, sampling_rate={self.target_rate}, "
                         "return_tensors='pt')\n"
                         f"embedding = {body}.{pool}")}


def _random_model(architecture: Architecture, *, dim: int, depth: int, heads: int) -> tuple[Any, Any]:
    import transformers as tf

    if dim % heads:
        raise ConfigError(f"encoder.dim: {dim} is not a multiple of encoder.heads {heads}")
    if architecture in ("wav2vec2", "hubert"):
        fields = {"hidden_size": dim, "num_hidden_layers": depth, "num_attention_heads": heads, "intermediate_size": 4 * dim,
                      "conv_dim": (32, 32, 32), "conv_kernel": (10, 3, 3), "conv_stride": (5, 2, 2),
                      "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4, "feat_extract_norm": "layer",
                      "do_stable_layer_norm": True, "apply_spec_augment": False}
        model = (tf.Wav2Vec2Model(tf.Wav2Vec2Config(**fields)) if architecture == "wav2vec2"
                 else tf.HubertModel(tf.HubertConfig(**fields)))
        extractor = tf.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True)
        return model, extractor
    if architecture == "ast":
        config = tf.ASTConfig(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                              intermediate_size=4 * dim, max_length=100, num_mel_bins=64)
        return tf.ASTModel(config), tf.ASTFeatureExtractor(num_mel_bins=64, max_length=100)
    # Whisper's encoder takes exactly 2 · max_source_positions log-mel frames: a 1 s window here, 30 s in Whisper.
    config = tf.WhisperConfig(d_model=dim, encoder_layers=depth, encoder_attention_heads=heads,
                              encoder_ffn_dim=4 * dim, decoder_layers=1, decoder_attention_heads=heads,
                              decoder_ffn_dim=4 * dim, num_mel_bins=80, max_source_positions=50,
                              max_target_positions=32, vocab_size=64, pad_token_id=1, bos_token_id=2,
                              eos_token_id=3, decoder_start_token_id=2, suppress_tokens=[], begin_suppress_tokens=[])
    return tf.WhisperModel(config), tf.WhisperFeatureExtractor(feature_size=80, chunk_length=1)


def _load(path: str, *, pretrained: bool, hub: bool) -> tuple[Any, Any, str]:
    import transformers as tf

    where, offline = hub_or_local(path, hub=hub, example="facebook/wav2vec2-base")
    try:
        config = tf.AutoConfig.from_pretrained(where, local_files_only=offline)
        if config.model_type not in SUPPORTED:
            raise ConfigError(f"encoder.path: {where} is a '{config.model_type}' model; hf_audio reads "
                              f"{', '.join(SUPPORTED)}")
        model = (tf.AutoModel.from_pretrained(where, local_files_only=offline) if pretrained
                 else tf.AutoModel.from_config(config))
        extractor = tf.AutoFeatureExtractor.from_pretrained(where, local_files_only=offline)
    except ConfigError:
        raise
    except OSError as error:
        raise ConfigError(f"encoder.path: {where} lacks a file hf_audio needs — config.json, weights and "
                          f"preprocessor_config.json (the feature extractor) ({error_summary(error)})") from None
    except Exception as error:  # noqa: BLE001 - safetensors/pickle/JSON errors all mean "bad folder"
        raise ConfigError(f"encoder.path: {where} is not a loadable HF audio model ({error_summary(error)})") from None
    for name in ("mask_time_prob", "mask_feature_prob", "layerdrop"):
        if hasattr(model.config, name):  # HF's own random SpecAugment / LayerDrop would make features random
            setattr(model.config, name, 0.0)
    return model, extractor, where


@ENCODERS.register("hf_audio", modality="speech",
                   description="HF wav2vec2 / HuBERT / WavLM / AST / Whisper encoder from a local folder (or hub)")
def build_hf_audio(*, path: str | None = None, pretrained: bool = True, hub: bool = False,
                   pool: Literal["mean", "cls"] = "mean", sample_rate: int = 16000,
                   architecture: Architecture = "wav2vec2", dim: int = 64, depth: int = 2,
                   heads: int = 2) -> Encoder:
    """``path``: a ``save_pretrained`` folder (``huggingface-cli download facebook/hubert-base-ls960``) or a Hub
    id with ``hub: true``; ``pretrained: false`` keeps the architecture with random weights. ``sample_rate``
    comes from the data (FSDD: 8 kHz) and is resampled to the checkpoint's. Without ``path``: a random
    ``architecture`` model with ``dim``/``depth``/``heads``."""
    if path is None:
        model, extractor = _random_model(architecture, dim=dim, depth=depth, heads=heads)
        source = f"random {architecture}"
    else:
        model, extractor, source = _load(path, pretrained=pretrained, hub=hub)
    return HFAudioEncoder(model, extractor, sample_rate=sample_rate, pool=pool, source=source)
