"""biolm.text.corpus: CoNLL/JSONL/standoff readers, IOB2 <-> span conversion, sentence splitting, writer."""

from __future__ import annotations

import gzip
import logging
import re
from pathlib import Path

import pytest

from biolm.text.corpus import (
    CorpusError,
    Sentence,
    Span,
    entity_types,
    read_conll,
    read_corpus,
    read_jsonl,
    read_standoff,
    spans_to_tags,
    split_text,
    tag_set,
    tags_to_spans,
    write_conll,
)

NCBI_DEVEL = Path(__file__).resolve().parents[2] / "data" / "text" / "ncbi_disease" / "devel.tsv.gz"
CONLL = "-DOCSTART-\tPMID-1\n\nBRCA1\tB-Gene\nis\tO\nmutated\tO\n\n\nbreast\tB-Disease\ncancer\tI-Disease\n-DOCSTART-\np53 B-Gene\n"


def _write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["train.tsv", "train.tsv.gz"])
def test_read_conll_documents_sentences_offsets(tmp_path, name):
    path = _write(tmp_path / name, CONLL)
    sentences = read_corpus(path)
    assert [s.doc_id for s in sentences] == ["PMID-1", "PMID-1", f"{name}#10"]  # an anonymous -DOCSTART- is named by its line
    assert [s.text for s in sentences] == ["BRCA1 is mutated", "breast cancer", "p53"]
    assert sentences[0].offsets == [(0, 5), (6, 8), (9, 16)]
    assert sentences[0].tags == ["B-Gene", "O", "O"]
    assert [s.where for s in sentences] == [f"{path}:3", f"{path}:8", f"{path}:11"]
    assert sentences[1].spans() == [Span(0, 13, "Disease", "breast cancer")]
    assert sentences[2].tags == ["B-Gene"]  # a single space separates when there is no tab
    assert entity_types(sentences) == ["Disease", "Gene"]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("BRCA1\tB-Gene\nis\tE-Gene\n", 2, "tag 'E-Gene' is not IOB2; tags must be IOB2 (O, B-<type>, I-<type>)"),
        ("BRCA1\tB-Gene\n\nis\tO\tx\n", 3, "expected 'token<TAB>tag' (2 columns), got 3"),
        ("BRCA1\tB-Gene\nis\n", 2, "expected 'token<TAB>tag' (2 columns), got 1"),
        ("BRCA1\tS-Gene\n", 1, "tag 'S-Gene' is not IOB2"),
        ("cancer\tDisease\n", 1, "tag 'Disease' is not IOB2"),
        ("", 1, "no sentence in the file"),
        ("-DOCSTART-\n\n\n", 3, "no sentence in the file"),
    ],
)
def test_read_conll_errors_name_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path / "bad.tsv", text)
    with pytest.raises(CorpusError, match=re.escape(f"bad.tsv:{line}: {message}")):
        read_conll(path, "data.train")


def test_missing_file_names_field_and_path(tmp_path):
    with pytest.raises(CorpusError, match=re.escape(f"data.val: file not found: {tmp_path / 'none.tsv'}")):
        read_corpus(tmp_path / "none.tsv", "data.val")
    with pytest.raises(CorpusError, match="holds no .txt file with a .ann or .a1"):
        read_corpus(tmp_path, "data.val")


def test_stray_inside_tags_kept_but_not_entities(tmp_path, caplog):
    path = _write(tmp_path / "stray.tsv", "BRCA1\tB-Gene\nbreast\tI-Disease\ncancer\tI-Disease\nand\tO\np53\tI-Gene\n")
    with caplog.at_level(logging.WARNING, logger="biolm.text.corpus"):
        (sentence,) = read_conll(path, "data.train")
    assert sentence.tags == ["B-Gene", "I-Disease", "I-Disease", "O", "I-Gene"]
    assert sentence.spans() == [Span(0, 5, "Gene", "BRCA1")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 I- tags" in warnings[0] and "line 2" in warnings[0]


def test_tags_spans_round_trip_with_spaces_tabs_unicode():
    text = "Tumour  suppressor\u00a0BRCA1 in β-catenin… signalling\tpathway"
    (sentence,) = split_text(text)
    assert sentence.tokens == ["Tumour", "suppressor", "BRCA1", "in", "β", "-", "catenin", "…", "signalling", "pathway"]
    assert sentence.offsets[:3] == [(0, 6), (8, 18), (19, 24)]
    spans = [Span(8, 24, "Gene", "suppressor\u00a0BRCA1"), Span(28, 37, "Gene", "β-catenin"), Span(39, 57, "Pathway", "signalling\tpathway")]
    tags = spans_to_tags(spans, sentence.offsets)
    assert tags == ["O", "B-Gene", "I-Gene", "O", "B-Gene", "I-Gene", "I-Gene", "O", "B-Pathway", "I-Pathway"]
    assert tags_to_spans(tags, sentence.offsets, text) == spans
    sentence.tags = tags
    assert spans_to_tags(sentence.spans(), sentence.offsets) == tags
    assert spans_to_tags([(2, 10, "X"), (6, 8, "Y")], sentence.offsets)[:3] == ["B-X", "I-X", "O"]  # partial overlap tags; "  " covers no token
    assert spans_to_tags([(8, 24, "A"), (19, 37, "B")], sentence.offsets)[:5] == ["O", "B-A", "I-A", "O", "O"]  # earlier wins, later dropped whole


def test_strict_iob2_spans():
    offsets = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert tags_to_spans(["B-A", "I-A", "I-B", "B-A", "B-A"], offsets, "a b c d e") == [
        Span(0, 3, "A", "a b"),
        Span(6, 7, "A", "d"),
        Span(8, 9, "A", "e"),
    ]
    assert tags_to_spans(["O", "I-A", "I-A", "O", "O"], offsets, "a b c d e") == []
    assert tag_set(["Cancer", "Gene"]) == ["O", "B-Cancer", "I-Cancer", "B-Gene", "I-Gene"]


def test_split_text_sentences_abbreviations_offsets():
    text = (
        "We have recently identified promoter DNA methylation of the genes ADAMTS1 and BNC1 as potential blood "
        "biomarkers of pancreas cancer. Fig. 2 shows e.g. J. Smith's data."
    )
    sentences = split_text(text, doc_id="d1")
    assert [s.start for s in sentences] == [0, 133]
    assert sentences[1].text == "Fig. 2 shows e.g. J. Smith's data."
    assert sentences[1].tokens == ["Fig", ".", "2", "shows", "e", ".", "g", ".", "J", ".", "Smith", "'", "s", "data", "."]
    assert len(sentences[0].tokens) == 21 and sentences[0].doc_id == "d1"
    for sentence in sentences:
        assert text[sentence.start : sentence.start + len(sentence.text)] == sentence.text
        for token, (start, end) in zip(sentence.tokens, sentence.offsets):
            assert sentence.text[start:end] == token == text[sentence.start + start : sentence.start + end]
    # the bundled methylation corpora were split without the abbreviation exceptions
    assert len(split_text(text, abbreviations=False)) == 5
    assert [s.text for s in split_text("Title line\nIt rose 2.5 fold. then fell! (see below) 3 cases? Yes")] == [
        "Title line",
        "It rose 2.5 fold. then fell!",
        "(see below) 3 cases?",
        "Yes",
    ]
    assert split_text(" \n\t ") == []


def test_read_jsonl(tmp_path):
    lines = [
        '{"id": 7, "text": "BRCA1 is mutated. TP53 too.", "spans": [{"start": 0, "end": 5, "label": "Gene"}, {"start": 18, "end": 22, "label": "Gene", "text": "TP53"}]}',
        "",
        '{"text": "No entities here.", "entities": []}',
        '{"text": "Unlabelled text."}',
    ]
    path = _write(tmp_path / "docs.jsonl.gz", "\n".join(lines) + "\n")
    sentences = read_corpus(path)
    assert [s.text for s in sentences] == ["BRCA1 is mutated.", "TP53 too.", "No entities here.", "Unlabelled text."]
    assert [s.doc_id for s in sentences] == ["7", "7", "docs.jsonl.gz:3", "docs.jsonl.gz:4"]  # a line without an id is its own document
    assert [s.start for s in sentences] == [0, 18, 0, 0]
    assert [s.tags for s in sentences] == [["B-Gene", "O", "O", "O"], ["B-Gene", "O", "O"], ["O", "O", "O", "O"], None]
    assert [s.where for s in sentences] == [f"{path}:1", f"{path}:1", f"{path}:3", f"{path}:4"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "x", "spans": [', "not valid JSON"),
        ('{"spans": []}', 'expected an object with a "text" string'),
        ('{"text": "BRCA1", "spans": [{"start": 0, "end": 9, "label": "Gene"}]}', "span 0-9 'Gene' lies outside the text (5 characters)"),
        ('{"text": "BRCA1", "spans": [{"start": 3, "end": 3, "label": "Gene"}]}', "span 3-3 'Gene' lies outside the text"),
    ],
)
def test_read_jsonl_errors_name_line(tmp_path, line, message):
    path = _write(tmp_path / "bad.jsonl", '{"text": "fine."}\n' + line + "\n")
    with pytest.raises(CorpusError, match=re.escape(f"bad.jsonl:2: {message}")):
        read_jsonl(path, "data.train")


STANDOFF_TEXT = "BRCA1 mutations cause breast cancer.\nMethylation of BNC1 was seen."
STANDOFF_ANN = (
    "T1\tGene 0 5\tBRCA1\n"
    "T2\tCancer 22 35\tbreast cancer\n"
    "T3\tCancer 29 35\tcancer\n"
    "T4\tGene 52 56\tBNC1\n"
    "T5\tDNA_methylation 37 48\tMethylation\n"
    "E1\tDNA_methylation:T5 Theme:T4\n"
    "A1\tNegation E1\n"
    "#1\tAnnotatorNotes T1\tnote\n"
)


@pytest.mark.parametrize("suffix", [".ann", ".a1"])
def test_read_standoff(tmp_path, suffix, caplog):
    _write(tmp_path / "doc.txt", STANDOFF_TEXT)
    _write(tmp_path / f"doc{suffix}", STANDOFF_ANN)
    _write(tmp_path / "README.txt", "not a document")  # no annotation beside it: skipped
    with caplog.at_level(logging.INFO, logger="biolm.text.corpus"):
        sentences = read_corpus(tmp_path)
    assert sentences == read_corpus(tmp_path / "doc.txt")
    assert [s.text for s in sentences] == ["BRCA1 mutations cause breast cancer.", "Methylation of BNC1 was seen."]
    assert [s.start for s in sentences] == [0, 37]
    assert [s.doc_id for s in sentences] == ["doc", "doc"]
    assert [s.where for s in sentences] == [f"{tmp_path / 'doc.txt'}:1", f"{tmp_path / 'doc.txt'}:2"]
    assert sentences[0].tags == ["B-Gene", "O", "O", "B-Cancer", "I-Cancer", "O"]  # nested "cancer" dropped
    assert sentences[1].tags == ["B-DNA_methylation", "O", "B-Gene", "O", "O", "O"]
    assert "dropped 1 overlapping" in caplog.text


def test_read_standoff_discontinuous_and_split_entity(tmp_path):
    text = "Cells got AdCMV. VEGF165 virus. Breast and ovarian cancer."
    _write(tmp_path / "doc.txt", text)
    _write(tmp_path / "doc.ann", "T1\tOrganism 10 24\tAdCMV. VEGF165\nT2\tCancer 32 38;51 57\tBreast cancer\n")
    sentences = read_standoff(tmp_path / "doc.txt", "data.train")
    assert [s.text for s in sentences] == ["Cells got AdCMV. VEGF165 virus.", "Breast and ovarian cancer."]  # no split inside T1
    assert sentences[0].spans() == [Span(10, 24, "Organism", "AdCMV. VEGF165")]
    assert sentences[1].spans() == [Span(0, 25, "Cancer", "Breast and ovarian cancer")]  # outer range


def test_read_standoff_text_mismatch(tmp_path):
    _write(tmp_path / "doc.txt", STANDOFF_TEXT)
    _write(tmp_path / "doc.ann", "T1\tGene 0 5\tBRCA1\nT2\tGene 52 56\tBNC2\n")
    with pytest.raises(CorpusError, match=re.escape("doc.ann:2: annotated text 'BNC2' differs from the document text 'BNC1'")):
        read_standoff(tmp_path / "doc.txt", "data.train")


@pytest.mark.parametrize("name", ["out.tsv", "out.tsv.gz"])
def test_write_conll_round_trip(tmp_path, name):
    source = read_conll(_write(tmp_path / "in.tsv", CONLL), "data.train")
    write_conll(source, tmp_path / name)
    again = read_conll(tmp_path / name, "data.train")
    assert [(s.tokens, s.tags, s.doc_id, s.text, s.offsets) for s in again] == [(s.tokens, s.tags, s.doc_id, s.text, s.offsets) for s in source]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in.tsv", name])  # no temporary file left
    with pytest.raises(CorpusError, match="has no tag for every token"):
        write_conll([Sentence("a", ["a"], [(0, 1)], where="x:1")], tmp_path / "unlabelled.tsv")


@pytest.mark.skipif(not NCBI_DEVEL.exists(), reason="bundled NCBI-disease corpus not present")
def test_real_ncbi_disease_devel(tmp_path):
    with gzip.open(NCBI_DEVEL, "rt", encoding="utf-8") as handle:
        head = [next(handle) for _ in range(300)]
    cut = max(i for i, line in enumerate(head) if not line.strip())
    part = read_conll(_write(tmp_path / "head.tsv", "".join(head[:cut])), "data.val")
    assert part[1].text.startswith("Germline mutations in BRCA1") and part[1].spans()[0].text == "inherited breast and ovarian cancer"
    sentences = read_corpus(NCBI_DEVEL, "data.val")
    assert len(sentences) == 923
    assert sum(len(s.tokens) for s in sentences) == 23969
    assert sum(len(s.spans()) for s in sentences) == 787
    assert entity_types(sentences) == ["Disease"]


def test_read_jsonl_joins_sentences_an_entity_runs_across_and_drops_overlaps(tmp_path):
    line = '{"text": "Loss of AdCMV. VEGF165 was seen. Then more.", "spans": [{"start": 8, "end": 22, "label": "Gene"}, {"start": 15, "end": 22, "label": "Gene"}]}'
    (first, second) = read_jsonl(_write(tmp_path / "docs.jsonl", line + "\n"), "data.train")
    assert first.text == "Loss of AdCMV. VEGF165 was seen."  # the splitter's cut after "AdCMV." is undone
    assert [s.text for s in first.spans()] == ["AdCMV. VEGF165"]  # the nested span is dropped
    assert second.text == "Then more." and second.where.endswith("docs.jsonl:1")
