"""``POST /v1/variants/score``: variant effect scores from `biolm.variants.score_variants`.

In: ``{"variants": [{"chrom": "17", "pos": 43045712, "ref": "G", "alt": "A"}, ...], "window_bp": 512}``;
windows are cut from the reference FASTA the server was started with (``reference=``).
Out: one row per variant: the variant, ``score`` (null when skipped), ``method``, ``window_bp``
(the window used: shorter than requested on a contig shorter than the window), ``note``. A variant
that cannot be scored (its REF differs with ``on_ref_mismatch=skip``, a contig too short for its
alleles) gets a null score and a note; the rest of the request is scored as usual.

The route exists only when the variants module is installed and a reference is configured; the
scoring call runs on the batcher's inference thread, so it never runs concurrently with predictions.
"""

from __future__ import annotations

import math
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from biolm.errors import BiolmError
from biolm.runs import Run
from biolm.service.schemas import ErrorBody
from biolm.variants import score_variants


class Variant(BaseModel):
    """One variant in genome coordinates."""

    model_config = ConfigDict(extra="forbid")

    chrom: str = Field(min_length=1, examples=["17"])
    pos: int = Field(ge=1, le=2**62, description="1-based position of the first REF base.", examples=[43045712])
    ref: str = Field(min_length=1, examples=["G"])
    alt: str = Field(min_length=1, examples=["A"])
    id: str | None = None


class VariantRequest(BaseModel):
    """Variants to score, and how."""

    model_config = ConfigDict(extra="forbid")

    variants: list[Variant]
    window_bp: int | None = Field(default=None, ge=8, le=2**31, description="Bases per window centred on each variant (default: the server's).")
    strand: Literal["+", "-"] = "+"
    rc_average: bool = Field(default=False, description="Average the score over both strands.")
    on_ref_mismatch: Literal["error", "skip"] = Field(default="error", description="skip: a REF that does not match gets score null and a note.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed(cls, data):
        """The field's old name gets an answer naming the new one, not just "extra inputs are not permitted"."""
        if isinstance(data, dict) and "average_rc" in data:
            raise PydanticCustomError("renamed", "average_rc was renamed rc_average")
        return data


class VariantScore(BaseModel):
    """The score of one variant."""

    id: str | None
    chrom: str
    pos: int
    ref: str
    alt: str
    score: float | None
    method: str
    window_bp: int = Field(description="Bases per window used for this variant (less than requested on a shorter contig).")
    note: str


class VariantResponse(BaseModel):
    """Scores in request order."""

    model: str
    window_bp: int
    scores: list[VariantScore]


def add_variant_route(app: FastAPI, run: Run, settings, dependencies: list) -> None:
    """Register ``POST /v1/variants/score`` on ``app`` (``settings.reference`` must be set)."""
    from biolm.variants import Reference

    reference = Reference(settings.reference, field_name="reference")
    batcher = app.state.batcher

    @app.post(
        "/v1/variants/score",
        response_model=VariantResponse,
        dependencies=dependencies,
        tags=["variants"],
        responses={401: {"model": ErrorBody}},
    )
    async def score(body: VariantRequest) -> VariantResponse:
        """Score variants against the served reference (supervised: change of the predicted score)."""
        if not body.variants:
            raise BiolmError("variants: the list is empty; send at least one variant")
        if len(body.variants) > settings.max_sequences:
            raise BiolmError(f"variants: {len(body.variants)} variants in one request; at most {settings.max_sequences} accepted (max_sequences)")
        window_bp = body.window_bp or settings.variants_window_bp
        if window_bp > settings.max_length_bp:
            raise BiolmError(f"window_bp: {window_bp}; at most {settings.max_length_bp} accepted (max_length_bp)")
        rows = [v.model_dump(exclude={"id"}) for v in body.variants]

        def work():
            return score_variants(
                run,
                rows,
                reference,
                window_bp=window_bp,
                batch_size=settings.max_batch,
                strand=body.strand,
                rc_average=body.rc_average,
                on_ref_mismatch=body.on_ref_mismatch,
            )

        frame = await batcher.run_exclusive(work)
        scores = [
            VariantScore(
                id=variant.id,
                chrom=variant.chrom,
                pos=variant.pos,
                ref=variant.ref,
                alt=variant.alt,
                score=None if not math.isfinite(value) else float(value),
                method=str(method),
                window_bp=int(width),
                note=str(note),
            )
            for variant, value, method, width, note in zip(
                body.variants, frame["score"].tolist(), frame["method"], frame["window_bp"], frame["note"]
            )
        ]
        return VariantResponse(model=run.path.name, window_bp=window_bp, scores=scores)
