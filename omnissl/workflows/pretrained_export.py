"""The library-native half of ``omnissl export``: the encoder's weights in the format of the library it came from
(``transformers`` with its tokenizer / image processor / feature extractor, ``timm``, ``torchvision``), and a
``README.md`` saying what the input is, how to load the folder without omnissl, and which run made it.

An encoder opts in with a method ``export_pretrained(out_dir, *, context) -> dict`` (the plugins' public-backbone
encoders define it) returning ``{"library", "folder", "load", "input"}``; the core never imports a plugin. An
encoder without the method that wraps a ``transformers`` model as ``.model`` still gets ``save_pretrained`` (and the
README says no preprocessor was saved).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

README_NAME = "README.md"
NATIVE_FOLDERS = ("hf_model", "timm_model", "torchvision_model")


def hf_model_of(encoder: nn.Module) -> Any | None:
    """The wrapped ``transformers.PreTrainedModel`` (attribute ``model``), if any."""
    model = getattr(encoder, "model", None)
    return model if model is not None and hasattr(model, "save_pretrained") else None


def write_native(encoder: nn.Module, out_dir: Path, *, context: Mapping[str, Any]) -> dict[str, Any] | None:
    """Write the library-native copy into ``out_dir/<folder>``; return its description, or ``None``."""
    hook = getattr(encoder, "export_pretrained", None)
    if callable(hook):
        takes_context = "context" in inspect.signature(hook).parameters
        return dict(hook(out_dir, context=context) if takes_context else hook(out_dir))
    model = hf_model_of(encoder)
    if model is None:
        return None
    model.save_pretrained(str(out_dir / "hf_model"))
    return {"library": "transformers", "folder": "hf_model", "input": None,
            "load": "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('hf_model')\n"
                    "# no tokenizer / processor was saved with this encoder: prepare inputs as omnissl did"}


def write_readme(out_dir: Path, config: Mapping[str, Any], native: Mapping[str, Any] | None) -> Path:
    """``out_dir/README.md``: provenance, input format and the two ways to load the export."""
    run = config.get("source_run")
    lines = [f"# Exported encoder `{config.get('encoder')}`", "",
             f"Made by `omnissl export` from run `{run}` (recipe `{config.get('recipe_name')}`, dataset "
             f"`{config.get('dataset')}`), checkpoint `{config.get('checkpoint')}` at step {config.get('step')}."
             if run else "Made by `omnissl export`.", "",
             (f"Embedding: `{config.get('embed_dim')}`-d pooled vector per sample; outputs "
             f"{', '.join(config.get('output_kinds', []))}."), ""]
    contract = (native or {}).get("input")
    if contract:
        lines += ["## Input", "", "```json", json.dumps(contract, indent=2), "```", ""]
    lines += ["## Load with omnissl (same outputs as in training: raw input in, normalisation inside)", "",
              "```python", "from omnissl.workflows.export import load_exported",
              "encoder = load_exported('.').eval()", "pooled = encoder(x).pooled", "```", ""]
    if native:
        lines += [f"## Load with plain {native['library']} (folder `{native['folder']}/`)", "",
                  "```python", str(native["load"]), "```", ""]
    path = out_dir / README_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
