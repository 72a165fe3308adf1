"""Static word vectors from a Hugging Face encoder's input embeddings, for taggers that start from words.

In: a local encoder folder (fast tokenizer + weights) and words. Out: one vector per word, the mean of
the input-embedding rows of its sub-tokens (no context, no special tokens), reduced to ``dim``
dimensions by PCA over the given words (numpy SVD) when ``dim`` is smaller than the encoder's width.
Used by ``model.tagger.word_vectors_from`` of the BiLSTM-CRF: where no domain word2vec file is at
hand, the encoder shipped for the text track gives word embeddings that already place related
sub-words near each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biolm.errors import BiolmError


def subword_mean_vectors(path: str | Path, words: list[str], dim: int) -> dict[str, list[float]]:
    """``{word: vector}`` of length ``dim`` (see the module docstring).

    Raises:
        BiolmError: the folder has no config.json, tokenizer or input-embedding weights, or ``dim`` exceeds the encoder's width.
    """
    from transformers import AutoModel, AutoTokenizer

    from biolm.models.hf_tagger import quiet_transformers

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise BiolmError(f"model.tagger.word_vectors_from: {folder} is not a Hugging Face model folder (no config.json)")
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        table = AutoModel.from_pretrained(str(folder), local_files_only=True).get_input_embeddings().weight.detach().numpy()
    if dim > table.shape[1]:
        raise BiolmError(f"model.tagger.word_dim={dim}: larger than the {table.shape[1]} dimensions of {folder}'s embeddings")
    pieces = tokenizer(list(words), add_special_tokens=False)["input_ids"]
    vectors = np.stack([table[ids].mean(axis=0) if ids else np.zeros(table.shape[1], dtype=table.dtype) for ids in pieces])
    if dim < vectors.shape[1]:
        centred = vectors - vectors.mean(axis=0)
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        vectors = centred @ components[:dim].T  # (n_words, min(dim, n_words))
        vectors = np.pad(vectors, ((0, 0), (0, dim - vectors.shape[1])))  # fewer words than dimensions: zero columns
        vectors /= max(float(vectors.std()), 1e-8)  # unit spread, as nn.Embedding initialises its rows
    return {word: vector.tolist() for word, vector in zip(words, vectors, strict=True)}
