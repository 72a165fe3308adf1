"""Checking a request's sequences against the served run and the server's limits (shared by every DNA route).

In: a `PredictRequest` (sequences, optional ids), the `Run` and the `ServeSettings`. Out: the
normalised (upper-case, stripped) sequences and their ids, or a `BiolmError` naming the field, the
sequence index and what is accepted (the service answers it 422 with one line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from biolm.errors import BiolmError, InvalidSequenceError
from biolm.runs import Run
from biolm.service.schemas import PredictRequest

if TYPE_CHECKING:
    from biolm.service.app import ServeSettings


def check_sequences(body: PredictRequest, run: Run, settings: ServeSettings) -> tuple[list[str], list[str]]:
    """Validate a request against the run's alphabet and the server's limits.

    Returns:
        ``(sequences, ids)``: upper-case, stripped sequences and their ids.

    Raises:
        BiolmError: a message naming the field, the sequence index and what is accepted.
    """
    sequences = body.sequences
    if not sequences:
        raise BiolmError("sequences: the list is empty; send at least one sequence")
    if len(sequences) > settings.max_sequences:
        raise BiolmError(f"sequences: {len(sequences)} sequences in one request; at most {settings.max_sequences} accepted (max_sequences)")
    if body.ids is not None and len(body.ids) != len(sequences):
        raise BiolmError(f"ids: {len(body.ids)} ids for {len(sequences)} sequences; send one id per sequence or none")
    for index, seq in enumerate(sequences):
        length = len(seq.strip())
        if length == 0:
            raise BiolmError(f"sequences[{index}]: the sequence is empty")
        if length > settings.max_length_bp:
            raise BiolmError(f"sequences[{index}]: {length} bp; at most {settings.max_length_bp} bp accepted (max_length_bp)")
    try:
        clean = run.tokenizer.alphabet.normalize(sequences, run.tokenizer.invalid)
    except InvalidSequenceError as err:
        # The run's tokenizer policy is fixed here, so the CLI's tokenizer.invalid hint does not apply.
        raise BiolmError(f"sequences[{err.index}]: {err.invalid_character}") from None
    short = run.tokenizer.too_short(clean)
    if short:
        named = ", ".join(f"sequences[{i}] ({len(clean[i])} bp)" for i in short[:3])
        more = f" and {len(short) - 3} more" if len(short) > 3 else ""
        raise BiolmError(f"{named}{more}: too short; {run.tokenizer.length_rule} (min_length_bp in /v1/model)")
    ids = list(body.ids) if body.ids is not None else [f"seq{i}" for i in range(len(sequences))]
    return clean, ids
