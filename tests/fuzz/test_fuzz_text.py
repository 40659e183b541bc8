"""Property-based fuzzing of every text reader (text_file CSV / TSV / JSONL / .txt, the AG News and SST-2 readers,
tokeniser loading): random bytes, truncations of a valid file, non-finite values and empty files either load
faithfully (one text per row) or raise a DataError naming the file — never another exception, never a silent drop."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import fuzzing
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnissl_text.data import load_ag_news, load_sst2, read_text_file
from omnissl_text.tokenization import load_tokenizer, train_tokenizer

from omnissl.core.errors import ConfigError, DataError

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NON_FINITE = ("nan", "inf", "-inf", "NaN", "Infinity", "1e400")
VALID = {  # no quotes, blank lines or CRs, so "rows" = lines after the header
    "csv": b"text,label\nthe cat sat,0\na dog ran,1\nstocks fell,2\nfinal match,1\n",
    "tsv": b"text\tlabel\nthe cat sat\t0\na dog ran\t1\nstocks fell\t2\n",
    "jsonl": b'{"text": "the cat sat", "label": 0}\n{"text": "a dog ran", "label": 1}\n{"text": "x", "label": 2}\n',
    "txt": b"the cat sat\na dog ran\nstocks fell\n",
}


def _non_finite_value(draw: st.DrawFn, valid: bytes) -> bytes:
    lines = valid.split(b"\n")
    row = draw(st.integers(0, len(lines) - 2))
    spelling = draw(st.sampled_from(NON_FINITE)).encode()
    for digit in b"0123456789":  # the label, else the first word
        if bytes([digit]) in lines[row]:
            lines[row] = lines[row].replace(bytes([digit]), spelling, 1)
            break
    else:
        lines[row] = spelling + lines[row][lines[row].find(b" "):] if b" " in lines[row] else spelling
    return b"\n".join(lines)


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes, a truncation, a label/text replaced by a non-finite spelling, or an empty file."""
    return fuzzing.damaged(valid, non_finite=_non_finite_value)


def expected_rows(content: bytes, fmt: str) -> int | None:
    """Rows a faithful reader must return for a file derived from VALID (``None``: no simple count)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(c in text for c in "\"\r\x00") or "\n\n" in text:
        return None
    lines = [line for line in text.split("\n") if line != ""] if fmt != "txt" else text.split("\n")
    if fmt == "txt":
        return len(lines) - (lines[-1] == "")
    return len(lines) - (fmt in ("csv", "tsv"))


def assert_names_the_file(error: Exception, path: Path) -> None:
    assert str(path) in str(error), f"error does not name {path.name}: {error}"


@FAST
@given(data=st.data(), fmt=st.sampled_from(sorted(VALID)))
def test_text_file_readers_fuzz(data: st.DataObject, fmt: str) -> None:
    content = data.draw(damaged(VALID[fmt]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data.{fmt}"
        path.write_bytes(content)
        try:
            texts, labels = read_text_file(path, label_column=None if fmt == "txt" else "label")
        except DataError as error:
            assert_names_the_file(error, path)
            return
    assert all(isinstance(t, str) and t.strip() for t in texts)
    assert labels is None or len(labels) == len(texts)
    rows = expected_rows(content, fmt)
    if rows is not None:
        assert len(texts) == rows  # no row dropped


@pytest.fixture(scope="module")
def samples(data_root: Path) -> dict[str, bytes]:
    """Small valid copies of the shipped files: 24 AG News rows (6 per class) and 16 SST-2 rows (train + test)."""
    ag = (data_root / "ag_news" / "test.csv").read_bytes().split(b"\n")
    by_class: dict[bytes, list[bytes]] = {}
    for line in ag:
        by_class.setdefault(line[:3], []).append(line)
    ag_rows = [row for key in (b'"1"', b'"2"', b'"3"', b'"4"') for row in by_class[key][:6]]
    sst = (data_root / "sst2" / "sst2.csv").read_bytes().split(b"\n")
    sst_rows = [sst[0], *[r for r in sst[1:] if r.startswith(b"train")][:8], *[r for r in sst if r.startswith(b"test")][:8]]
    return {"ag_news/test.csv": b"\n".join(ag_rows) + b"\n", "sst2/sst2.csv": b"\n".join(sst_rows) + b"\n"}


@SLOW
@given(data=st.data(), name=st.sampled_from(["ag_news/test.csv", "sst2/sst2.csv"]))
def test_ag_news_and_sst2_readers_fuzz(samples: dict[str, bytes], data: st.DataObject, name: str) -> None:
    content = data.draw(damaged(samples[name]))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / name).parent.mkdir()
        (root / name).write_bytes(content)
        try:
            train, test = (load_ag_news(root, test_fraction=0.2, split_seed=0) if name.startswith("ag")
                           else load_sst2(root, eval_split="test"))
        except DataError as error:
            assert_names_the_file(error, root / name)
            return
    assert len(train[0]) == len(train[1]) and len(test[0]) == len(test[1])
    if name.startswith("ag"):
        assert len(train[0]) + len(test[0]) == content.count(b"\n") + (not content.endswith(b"\n"))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = ["the cat sat on the mat", "a dog chased the cat", "stocks fell sharply"] * 4
    return train_tokenizer(corpus, vocab_size=60, cache_dir=tmp_path_factory.mktemp("tok")).directory


@SLOW
@given(data=st.data(), name=st.sampled_from(["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]))
def test_tokenizer_loading_fuzz(tokenizer_dir: Path, data: st.DataObject, name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "tok"
        shutil.copytree(tokenizer_dir, copy)
        if not (copy / name).is_file():
            return
        (copy / name).write_bytes(data.draw(damaged((copy / name).read_bytes())))
        try:
            info = load_tokenizer(copy)
        except (ConfigError, DataError) as error:
            assert_names_the_file(error, copy)
            assert "\n" not in str(error)
            return
    assert info.vocab_size > 0 and info.pad_token_id is not None
