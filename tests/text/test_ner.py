"""NER scoring, window merging, held-out splits, documents and extraction records, with a rule-based tagger."""

from __future__ import annotations

import json

import pytest
import torch

from biolm.errors import BiolmError
from biolm.models.word_tagger import WordTagger, repair_iob2_names
from biolm.text.corpus import Sentence, split_text, tags_to_spans
from biolm.text.documents import annotate, read_documents
from biolm.text.extract import build_record, extract_records, normalise, score_extraction
from biolm.text.ner import hold_out, tag_sentences
from biolm.text.scores import entity_scores, error_summary, type_confusion

pytest.importorskip("seqeval")

COURSE = "We have recently identified promoter DNA methylation of the genes ADAMTS1 and BNC1 as potential blood biomarkers of pancreas cancer"


class RuleTagger(WordTagger):
    """Tags upper-case words with a digit as genes, ``methylation`` as a trigger, ``<word> cancer`` as a cancer;
    ``window`` words per window (overlap 2) so that merging is exercised."""

    def __init__(self, window: int = 1000):
        super().__init__()
        self.tags = ["O", "B-Gene", "I-Gene", "B-Cancer", "I-Cancer", "B-DNA_methylation", "I-DNA_methylation"]
        self.window = window
        self.calls = 0

    def _tag(self, words: list[str]) -> list[int]:
        out = []
        for i, w in enumerate(words):
            if w.isupper() and any(c.isdigit() for c in w):
                out.append(1)
            elif w == "methylation":
                out.append(5)
            elif i + 1 < len(words) and words[i + 1] == "cancer":
                out.append(3)
            elif w == "cancer" and i > 0:
                out.append(4)
            else:
                out.append(0)
        return out

    def encode(self, words):
        return {"words": list(words)}

    def collate(self, items):
        return {"items": items, "word_mask": torch.ones(len(items), 1, dtype=torch.bool)}

    def decode(self, batch):
        self.calls += 1
        return [self._tag(item["words"]) for item in batch["items"]]

    def windows(self, words):
        if len(words) <= self.window:
            return [(0, len(words))]
        spans, start = [], 0
        while True:
            end = min(start + self.window, len(words))
            spans.append((start, end))
            if end == len(words):
                return spans
            start = end - 2


def sentence(words: list[str], tags: list[str]) -> Sentence:
    text, offsets, at = " ".join(words), [], 0
    for w in words:
        offsets.append((at, at + len(w)))
        at += len(w) + 1
    return Sentence(text=text, tokens=words, offsets=offsets, tags=tags)


def test_entity_scores_match_seqeval_strict_on_a_hand_made_case():
    gold = [["B-Gene", "I-Gene", "O", "B-Disease"], ["O", "B-Gene", "O"]]
    pred = [["B-Gene", "I-Gene", "O", "B-Gene"], ["O", "I-Gene", "O"]]  # a type error, and a stray I- (not an entity when strict)
    scores = entity_scores(gold, pred)
    # 3 gold entities, 2 predicted entities (the stray I-Gene does not count), 1 correct
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert scores["per_type"]["Gene"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["per_type"]["Disease"]["support"] == 1 and scores["per_type"]["Disease"]["f1"] == 0.0


def test_error_summary_and_type_confusion_count_each_kind():
    words = ["a", "b", "c", "d", "e", "f", "g", "h"]
    gold = sentence(words, ["B-Gene", "I-Gene", "O", "B-Disease", "O", "B-Gene", "O", "B-Gene"])
    pred = ["B-Gene", "I-Gene", "O", "B-Gene", "O", "O", "B-Disease", "B-Disease"]
    # Gene a-b correct; Disease d predicted as Gene (type); Gene f missed; Gene h -> Disease h (type); Disease g spurious
    assert error_summary([gold], [pred]) == {"correct": 1, "type": 2, "boundary": 0, "boundary_and_type": 0, "missed": 1, "spurious": 1}
    boundary = sentence(["a", "b", "c"], ["B-Gene", "I-Gene", "O"])
    assert error_summary([boundary], [["B-Gene", "O", "O"]])["boundary"] == 1
    names, matrix = type_confusion([gold], [pred], ["Disease", "Gene"])
    assert names == ["Disease", "Gene", "none"]
    assert matrix == [[0, 1, 0], [1, 1, 1], [1, 0, 0]]


def test_windows_are_merged_into_whole_sentence_tags():
    words = COURSE.split()
    whole = tag_sentences(RuleTagger(), [sentence(words, ["O"] * len(words))])
    windowed = tag_sentences(RuleTagger(window=5), [sentence(words, ["O"] * len(words))])
    assert windowed == whole
    assert [w for w, t in zip(words, whole[0], strict=True) if t != "O"] == ["methylation", "ADAMTS1", "BNC1", "pancreas", "cancer"]


def test_repair_turns_a_stray_inside_tag_into_a_begin_tag():
    assert repair_iob2_names(["I-Gene", "I-Gene", "O", "I-Disease", "B-Gene", "I-Disease"]) == ["B-Gene", "I-Gene", "O", "B-Disease", "B-Gene", "B-Disease"]


def test_hold_out_keeps_documents_whole_and_is_seeded():
    sentences = [Sentence(text="x", tokens=["x"], offsets=[(0, 1)], tags=["O"], doc_id=f"d{i // 3}") for i in range(30)]
    train, val = hold_out(sentences, 0.2, seed=1)
    assert len(val) == 6 and len(train) == 24
    assert not {s.doc_id for s in train} & {s.doc_id for s in val}
    assert [s.doc_id for s in hold_out(sentences, 0.2, seed=1)[1]] == [s.doc_id for s in val]
    with pytest.raises(BiolmError, match="data.split.val"):
        hold_out(sentences, 1.5, seed=1)


def test_annotate_gives_offsets_into_the_original_text(tmp_path):
    text = "Loss of  BRCA1 and TP53 in breast cancer.  Methylation of MLH1 was not seen."
    (tmp_path / "docs.txt").write_text(text + "\n\nSecond doc about KRAS2 only.\n")
    documents = read_documents(tmp_path / "docs.txt")
    assert [d[0] for d in documents] == ["docs:1", "docs:3"]
    rows = annotate(RuleTagger(), documents)
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
    assert [e["text"] for e in rows[0]["entities"]] == ["BRCA1", "TP53", "breast cancer", "MLH1"]
    assert [e["text"] for e in rows[1]["entities"]] == ["KRAS2"]


def test_read_documents_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(BiolmError, match="does not exist"):
        read_documents(tmp_path / "missing.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"id": 3}\n')
    with pytest.raises(BiolmError, match=r"bad.jsonl:2: expected an object"):
        read_documents(bad)


def test_extraction_of_the_course_sentence():
    fields = {"genes": ["Gene"], "diseases": ["Disease"], "cancer_types": ["Cancer"], "chemicals": ["Chemical"]}
    record = extract_records([RuleTagger()], [("course", COURSE)], fields, {"DNA_methylation": "methylation"})[0]
    assert record["genes"] == ["ADAMTS1", "BNC1"]
    assert record["cancer_types"] == ["pancreas cancer"]
    assert record["methylation"] == "methylation"
    assert record["methylation_trigger"] == {"text": "methylation", "start": COURSE.index("methylation"), "end": COURSE.index("methylation") + 11}
    assert json.loads(json.dumps(record)) == record


def test_normalisation_and_field_scores():
    assert normalise("genes", " brca1, ") == "BRCA1"
    assert normalise("cancer_types", "Primary  Breast Cancers") == "primary breast cancer"
    assert normalise("cancer_types", "gliomas") == "glioma"
    fields, methylation = {"genes": ["Gene"]}, {"DNA_methylation": "methylation"}
    gold = [build_record("0", [{"start": 0, "end": 4, "label": "Gene", "text": "MLH1"}, {"start": 5, "end": 16, "label": "DNA_methylation", "text": "methylation"}], fields, methylation),
            build_record("1", [{"start": 0, "end": 3, "label": "Gene", "text": "APC"}], fields, methylation)]
    pred = [build_record("0", [{"start": 0, "end": 4, "label": "Gene", "text": "mlh1"}], fields, methylation),
            build_record("1", [{"start": 0, "end": 3, "label": "Gene", "text": "APC"}, {"start": 4, "end": 7, "label": "Gene", "text": "KIT"}], fields, methylation)]
    scores = score_extraction(pred, gold, ["genes"])
    assert scores["genes"]["precision"] == pytest.approx(2 / 3) and scores["genes"]["recall"] == 1.0
    assert scores["methylation"]["recall"] == 0.0 and scores["methylation"]["n_gold"] == 1


def test_split_text_spans_round_trip_through_the_rule_tagger():
    (s,) = split_text(COURSE)
    tags = tag_sentences(RuleTagger(), [s])[0]
    assert [span.text for span in tags_to_spans(tags, s.offsets, s.text)] == ["methylation", "ADAMTS1", "BNC1", "pancreas cancer"]


def test_normalisation_keeps_brackets_that_belong_to_the_name():
    assert normalise("genes", "p16(INK4a)") == "P16(INK4A)"
    assert normalise("chemicals", "Ca(2+)") == "Ca(2+)"
    assert normalise("genes", "(BRCA1)") == "BRCA1"
    assert normalise("genes", "BRCA1)") == "BRCA1"


def test_read_documents_refuses_other_files_and_bad_bytes(tmp_path):
    (tmp_path / "x.xml").write_text("<doc/>\n")
    with pytest.raises(BiolmError, match="unknown kind of file"):
        read_documents(tmp_path / "x.xml")
    (tmp_path / "x.csv").write_text("doc_id,text\n")
    with pytest.raises(BiolmError, match="holds no document"):
        read_documents(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text("name,body\na,b\n")
    with pytest.raises(BiolmError, match="no 'text' column"):
        read_documents(tmp_path / "y.csv")
    (tmp_path / "z.csv").write_text('id,doc_id,text\n1,pmid:7,"BRCA1 is lost, again."\n')
    assert read_documents(tmp_path / "z.csv") == [("pmid:7", "BRCA1 is lost, again.")]  # doc_id wins over a row id
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(BiolmError, match="not UTF-8"):
        read_documents(tmp_path / "bad.txt")
