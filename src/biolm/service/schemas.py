"""Request and response bodies of the prediction service (pydantic v2; they make the OpenAPI schema).

The limits a request is checked against (sequence count, length, body size) depend on the served
settings, so they are enforced by the routes, which answer 422/413 with a message naming the
sequence index; the schema itself only fixes the shapes.
"""

from __future__ import annotations

from typing import Any, Literal

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
    prediction: str | float = Field(
        description="Predicted label (classification, at the run's decision threshold for binary runs; ';'-joined for multilabel) or value (regression)."
    )
    probabilities: dict[str, float] | None = Field(default=None, description="Per-class probability (classification tasks).")
    call: str | None = Field(default=None, description="The risk band of the positive class's probability (binary runs with task.bands; else null).")


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
    decision: dict[str, Any] | None = Field(
        default=None,
        description="Binary runs: the decision threshold (prediction is positive at or above it), the rule that chose it, what it reached on validation, and the risk bands of call.",
    )
    example: str | None = Field(
        default=None,
        description="A sequence to try (the page's Load example), per the server's example setting: by default (auto) the run's first test, val or train row, cut to fit /v1/attribute; none when the server sets example=none.",
    )
    attribution: list[str] = Field(default_factory=list, description="The /v1/attribute methods this server answers (saliency needs captum; empty: none).")


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: str


class ErrorBody(BaseModel):
    """Every 4xx answer: one line for people, the details for programs."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class AttributeRequest(BaseModel):
    """One sequence to predict and explain base by base."""

    model_config = ConfigDict(extra="forbid")

    sequence: str = Field(description="One nucleotide sequence (as in /v1/predict); it must fit the model whole.", examples=["TATAAAAGGCGCGCCTATAAAAGCC"])
    id: str = Field(default="seq0", description="An id echoed in the answer.")
    method: Literal["saliency", "ism"] = Field(
        default="saliency",
        description="saliency: gradient x input, one backward pass (fast; 501 when the server lacks captum). ism: in-silico mutagenesis, 3 forward passes per base (exact; sequences over the server's ism_max_bp, limits.ism_max_bp in /v1/model, are refused with a 422 naming the limit).",
    )
    target: str | None = Field(default=None, description="The class to explain (default: the positive class, or the top class of a multiclass run).")
    window_bp: int = Field(default=10, ge=1, le=10_000, description="Width of the reported top window (bases).")


class TopWindow(BaseModel):
    """The window of largest summed score (0-based, half-open)."""

    start: int
    end: int
    score: float = Field(description="Summed score of the window's bases.")
    sequence: str


class AttributionResponse(BaseModel):
    """A prediction and the per-base scores it rests on."""

    model: str = Field(description="Name of the served run.")
    id: str
    prediction: Prediction = Field(description="What /v1/predict answers for this sequence.")
    method: str
    baseline: str | None = Field(description="The baseline of a gradient method (None for saliency and ism).")
    target: str = Field(description="The class whose output is explained ('value' for regression).")
    output: float = Field(description="The explained output: the target's logit (for regression the value, as /v1/predict gives it) on the whole sequence; with the run's rc_average, the mean of both strands'.")
    sequence: str = Field(description="The normalised sequence; scores[i] belongs to sequence[i].")
    scores: list[float] = Field(description="One score per base: positive pushes the output up, negative down.")
    top_window: TopWindow
