"""Biomedical text: corpora (`biolm.text.corpus`), named-entity recognition (`biolm.text.ner`) and
structured extraction (`biolm.text.extract`) on the same engine as the DNA models."""
