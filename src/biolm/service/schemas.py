"""Request and response bodies of the prediction service (pydantic v2; they make the OpenAPI schema).

The limits a request is checked against (sequence count, length, body size) depend on the served
settings, so they are enforced by the routes, which answer 422/413 with a message naming the
sequence index; the schema itself only fixes the shapes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """One or many sequences to predict."""

    model_config = ConfigDict(extra="forbid")

    sequences: list[str] = Field(
        description=(
            "Nucleotide sequences (A, C, G, T, N in any case; surrounding whitespace is stripped), each at least "
            "the served tokenizer's min_length_bp bases long (k for a k-mer model; see /v1/model)."
        ),
        examples=[["ACGTACGTTAGCTAGCTAGGCTA", "TTGACAATTATAAAGGCTTACG"]],
    )
    ids: list[str] | None = Field(default=None, description="Optional ids, one per sequence (default seq0, seq1, ...).")


class Prediction(BaseModel):
    """The prediction for one sequence."""

    id: str
    prediction: str | float = Field(description="Predicted label (classification; ';'-joined for multilabel) or value (regression).")
    probabilities: dict[str, float] | None = Field(default=None, description="Per-class probability (classification tasks).")


class PredictResponse(BaseModel):
    """Predictions in request order."""

    model: str = Field(description="Name of the served run.")
    task: str
    labels: list[str]
    predictions: list[Prediction]


class ModelCard(BaseModel):
    """What the served run is: task, label space, test metrics, tokenizer and input window."""

    name: str
    task: str
    labels: list[str]
    metrics: dict[str, Any] = Field(description="The run's test_metrics.json.")
    tokenizer: dict[str, Any] = Field(description="The tokenizer's saved parameters (kind, k, stride, invalid, ...).")
    window: dict[str, Any] = Field(description="Input window: max_tokens, bases_per_token, approximate max_bp per forward pass, min_length_bp.")
    model: dict[str, Any] = Field(description="Architecture (_target_) and parameter count.")
    limits: dict[str, Any] = Field(description="Request limits of this server.")
    variants: bool = Field(description="Whether /v1/variants/score is served.")


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: str


class ErrorBody(BaseModel):
    """Every 4xx answer: one line for people, the details for programs."""

    detail: str
    errors: list[dict[str, Any]] | None = None
