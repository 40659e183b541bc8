"""Export a trained encoder: ``encoder.safetensors`` + ``omnissl_encoder.json`` (registered builder name, the
full keyword arguments it was built with, plugins, embedding size), reloadable with :func:`load_exported`
without the recipe, the objective or the training code. An encoder that wraps a ``transformers`` model is also
written with ``save_pretrained`` to ``hf_model/`` so ``AutoModel.from_pretrained`` loads it directly.

Layout (one tower): ``OUT/omnissl_encoder.json``, ``OUT/encoder.safetensors`` [, ``OUT/hf_model/``].
Several towers: one such folder per tower, ``OUT/<tower>/``. The parameters come from the run's ``resolved.yaml``
(what the builder was actually called with), so exporting needs neither the dataset nor its ``input_spec``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from torch import nn

from omnissl.core.errors import CheckpointError, ConfigError
from omnissl.core.types import Encoder

CONFIG_NAME = "omnissl_encoder.json"
WEIGHTS_NAME = "encoder.safetensors"
FORMAT = "omnissl-encoder/1"


def recorded_params(spec: Any, resolved: dict[str, dict[str, Any]] | None,
                    path: str = "encoder") -> tuple[dict[str, Any], list[str]]:
    """``(params, not_recorded)`` for ``omnissl_encoder.json``: every argument the run's ``resolved.yaml`` says the
    recipe, the dataset's ``input_spec`` or the context supplied (defaults stay the builder's own); without a
    record (an encoder built by hand, an old run), the recipe's parameters. A value that is not plain data is
    left out and named, so the builder's default applies — refused when the builder has none."""
    from omnissl.core.instantiate import check_params, plain_value
    from omnissl.core.registry import ENCODERS

    entry = ENCODERS.get(spec.name)
    if resolved is None:
        resolved = {}
        for name, value in check_params(entry, spec.params, path).items():
            plain, exact = plain_value(value)
            resolved[name] = {"value": plain, "source": "recipe", **({} if exact else {"plain": False})}
    params, left_out = {}, []
    for name, item in resolved.items():
        if item["source"] == "default":
            continue
        if item.get("plain", True):
            params[name] = item["value"]
            continue
        parameter = entry.signature.parameters.get(name)
        if parameter is None or parameter.default is inspect.Parameter.empty:
            raise ConfigError(f"export: {path}.{name} is a {item['value']} that JSON cannot record, and "
                              f"'{spec.name}' has no default for it")
        left_out.append(name)
    return params, left_out


def hf_model_of(encoder: nn.Module) -> Any | None:
    """The wrapped ``transformers.PreTrainedModel`` (attribute ``model``), if any."""
    from omnissl.workflows.pretrained_export import hf_model_of as wrapped

    return wrapped(encoder)


def export_encoder(encoder: Encoder, spec: Any, context: dict[str, Any], out_dir: Path, *,
                   plugins: list[str], extra: dict[str, Any] | None = None,
                   resolved: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write one encoder's weights and config into ``out_dir``; return the config path. ``resolved``: the
    encoder's parameters as the run recorded them (:func:`recorded_params`)."""
    from safetensors.torch import save_model

    out_dir.mkdir(parents=True, exist_ok=True)
    params, left_out = recorded_params(spec, resolved)
    save_model(encoder.cpu(), str(out_dir / WEIGHTS_NAME))  # handles tied/shared tensors
    config = {"format": FORMAT, "encoder": spec.name, "params": params, "plugins": plugins,
              "embed_dim": int(encoder.embed_dim), "output_kinds": sorted(encoder.output_kinds),
              "not_recorded": left_out, **(extra or {})}
    # The library-native copy (HF + tokenizer/processor, timm, torchvision) and the README: issue 21.
    from omnissl.workflows.pretrained_export import write_native, write_readme

    native = write_native(encoder, out_dir, context=context)
    if native is not None:
        config[native["folder"]] = native["folder"]
        config["native_library"] = native["library"]
    path = out_dir / CONFIG_NAME
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    write_readme(out_dir, config, native)
    return path


def check_output(paths: list[Path], *, verb: str, overwrite: bool, data_root: str | Path | None) -> None:
    """Refuse, before any work, to write into the data root or to replace a file without ``overwrite``.

    Run directories are never overwritten; exports and embeddings are results too, so replacing one needs the
    user to say so (F16). The data root is read-only input for every command, whatever the flags.
    """
    from omnissl.train.assemble import data_root as resolve_root

    root = resolve_root(data_root).expanduser().resolve()
    for path in paths:
        if path.expanduser().resolve().is_relative_to(root):
            raise ConfigError(f"{verb} --out {path}: inside the data root {root}; omnissl never writes there, "
                              f"choose another folder")
    refuse_existing(paths, verb=verb, overwrite=overwrite)


def refuse_existing(paths: list[Path], *, verb: str, overwrite: bool) -> None:
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(f"{verb} --out: {existing[0]} already exists{more}; pass --overwrite to replace it")


def export_folders(out: Path, towers: list[str]) -> dict[str, Path]:
    """Where each tower is exported: ``OUT`` itself for a one-tower run, ``OUT/<tower>`` with several."""
    return {towers[0]: out} if len(towers) == 1 else {tower: out / tower for tower in towers}


def export_paths(out: Path, towers: list[str] | None) -> list[Path]:
    """The files an export writes, per tower folder (``towers=None``: one tower, written to ``out``)."""
    folders = list(export_folders(out, towers or ["main"]).values())
    for folder in [out, *folders]:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"export --out {out}: {folder} is a file; export writes a folder "
                              f"({CONFIG_NAME} + {WEIGHTS_NAME}), give a folder path")
    from omnissl.workflows.pretrained_export import NATIVE_FOLDERS, README_NAME

    names = (CONFIG_NAME, WEIGHTS_NAME, *NATIVE_FOLDERS, README_NAME)
    return [folder / name for folder in folders for name in names]


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, *, checkpoint: str | Path | None = None,
               data_root: str | Path | None = None, overwrite: bool = False) -> list[Path]:
    """Export every tower of a trained run (latest checkpoint unless given); default ``RUN_DIR/export``.
    Existing export files are only replaced with ``overwrite=True``. The encoders are rebuilt from the run's
    ``resolved.yaml`` without building its dataset; a run made before that file existed is rebuilt through its
    dataset, as before, with a note."""
    from omnissl.core.config import load_recipe
    from omnissl.train import checkpoint as ckpt
    from omnissl.train.assemble import tower_spec
    from omnissl.train.resolved import FILE_NAME, encoder_params, log, rebuild_trained, resolved_document
    from omnissl.workflows.session import load_trained

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir else run_dir / "export"
    if not (run_dir / "recipe.yaml").is_file():
        raise ConfigError(f"{run_dir} has no recipe.yaml: not an omnissl run directory")
    saved = load_recipe(run_dir / "recipe.yaml")
    folders = export_folders(out, list(saved.towers))
    check_output(export_paths(out, list(saved.towers)), verb="export", overwrite=overwrite, data_root=data_root)
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir / "checkpoints")
    rebuilt = rebuild_trained(run_dir, checkpoint=path)
    if rebuilt is not None:
        recipe, objective, document, step = rebuilt.recipe, rebuilt.objective, rebuilt.document, rebuilt.step
        spec = document["input_spec"]
    else:
        log.warning(f"{run_dir}: no {FILE_NAME} (a run from before it was recorded): rebuilding the encoder "
                    f"through the training dataset")
        assembled = load_trained(run_dir, checkpoint=path, root=data_root)
        recipe, objective, spec = assembled.recipe, assembled.objective, assembled.bundle.input_spec
        document = resolved_document(recipe, spec, assembled.resolved)  # what this rebuild called the builders with
        step = int(ckpt.load_checkpoint(path)["step"]) if path else None
    written = []
    for tower, encoder in objective.towers.items():
        extra = {"tower": tower, "source_run": str(run_dir.resolve()), "checkpoint": str(path), "step": step,
                 "recipe_name": recipe.name, "dataset": recipe.data.name}
        written.append(export_encoder(encoder, recipe.towers[tower].encoder, tower_spec(recipe, spec, tower),
                                      folders[tower], plugins=list(recipe.plugins), extra=extra,
                                      resolved=encoder_params(document, recipe.tower_key(tower, "encoder"))))
    return written


def load_exported(directory: str | Path, *, map_location: str = "cpu") -> Encoder:
    """Rebuild an exported encoder from its JSON (builder name + params) and load its safetensors weights."""
    from safetensors.torch import load_model

    from omnissl.core.instantiate import build_component
    from omnissl.core.config import Component
    from omnissl.core.registry import ENCODERS, require_plugins

    directory = Path(directory)
    config = read_export_config(directory)
    config_path = directory / CONFIG_NAME
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise ConfigError(f"{directory}: no {WEIGHTS_NAME} beside {CONFIG_NAME}; the export is incomplete "
                          f"(export the run again)")
    require_plugins(names=config["plugins"], key=str(config_path))
    spec = Component(name=config["encoder"], **config["params"])
    encoder = build_component(ENCODERS, spec, f"{config_path}: encoder")
    try:
        load_model(encoder, str(weights), strict=True, device=map_location)
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        detail = " ".join(str(error).split())[:300]
        raise CheckpointError(f"{weights}: cannot load into encoder '{spec.name}' "
                              f"({type(error).__name__}: {detail})") from None
    return encoder


def read_export_config(directory: Path) -> dict[str, Any]:
    """``omnissl_encoder.json`` checked field by field, so a hand-edited or truncated file names what is wrong."""
    config_path = directory / CONFIG_NAME
    if not config_path.is_file():
        raise ConfigError(f"{directory}: no {CONFIG_NAME}; not an `omnissl export` directory")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{config_path}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_path}: expected a JSON object, got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ConfigError(f"{config_path}: format {config.get('format')!r}, expected {FORMAT!r}")
    for key, kind, what in (("encoder", str, "a registered encoder name"),
                            ("params", dict, "an object of builder parameters"),
                            ("plugins", list, "a list of plugin names")):
        value = config.get(key, [] if key == "plugins" else None)
        if not isinstance(value, kind):
            raise ConfigError(f"{config_path}: '{key}' must be {what}, got {value!r:.80}")
    if "name" in config["params"]:
        raise ConfigError(f"{config_path}: params.name: not a builder parameter")
    return {"plugins": [], **config}


def write_embeddings(encoder: Encoder, bundle: Any, out: str | Path, *, splits: tuple[str, ...] = ("train", "test"),
                     select: Any = None, device: str = "cpu", batch_size: int = 256,
                     overwrite: bool = False) -> dict[str, int]:
    """Pooled features of every sample of ``splits``, in dataset order, to ``out``:

    ``.npy``: the ``(N, D)`` float32 matrix, with ``<stem>.labels.npy`` ``(N,)`` and ``<stem>.split.npy`` ``(N,)``
    (``"train"``/``"test"``) beside it; ``.parquet``: columns ``split``, ``row`` (position in its split),
    ``label`` and ``embedding`` (a list of D floats). Returns the row count per split. Existing files are only
    replaced with ``overwrite=True``.
    """
    import numpy as np

    from omnissl.eval.features import extract_features
    from omnissl.train.distributed import resolve_device

    out = Path(out)
    refuse_existing(embedding_paths(out), verb="embed", overwrite=overwrite)
    target = resolve_device(device)
    encoder.to(target)
    parts, counts = [], {}
    for split in splits:
        dataset = getattr(bundle, split, None)
        if dataset is None:
            raise ConfigError(f"embed --split {split}: the dataset has no {split} split")
        features, labels = extract_features(encoder, dataset, bundle, device=target, batch_size=batch_size,
                                            select=select or (lambda x: x))
        counts[split] = int(features.shape[0])
        parts.append((split, features.numpy().astype(np.float32), labels.numpy()))
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, np.concatenate([p[1] for p in parts]))
        np.save(out.with_suffix(".labels.npy"), np.concatenate([p[2] for p in parts]))
        np.save(out.with_suffix(".split.npy"), np.concatenate([np.full(len(p[1]), p[0]) for p in parts]))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({
            "split": pa.array([p[0] for p in parts for _ in range(len(p[1]))]),
            "row": pa.array(np.concatenate([np.arange(len(p[1])) for p in parts])),
            "label": pa.array(np.concatenate([p[2] for p in parts])),
            "embedding": pa.array(list(np.concatenate([p[1] for p in parts])), type=pa.list_(pa.float32())),
        })
        pq.write_table(table, out)
    return counts


def embedding_paths(out: Path) -> list[Path]:
    """Every file :func:`write_embeddings` writes for ``out`` (a ``.npy`` has two companions)."""
    if out.is_dir():
        raise ConfigError(f"embed --out {out}: is a folder; give a file ending in .npy or .parquet")
    if out.suffix not in (".npy", ".parquet"):
        raise ConfigError(f"embed --out {out}: the file must end in .npy or .parquet")
    if out.suffix == ".parquet":
        return [out]
    return [out, out.with_suffix(".labels.npy"), out.with_suffix(".split.npy")]
