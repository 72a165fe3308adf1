"""A public checkpoint through biolm's native trunk and through its reference implementation, side by side.

    python bench/port_parity.py InstaDeepAI/nucleotide-transformer-500m-human-ref
    python bench/port_parity.py zhihan1996/DNA_bert_6
    python bench/port_parity.py LongSafari/hyenadna-tiny-1k-seqlen-hf --remote-code --revision e8c1effa8673814e257e627d2e1eda9ea5a373f6
    python bench/port_parity.py zhihan1996/DNABERT-2-117M --remote-code     # transformers 4.28/4.29, triton uninstalled
    python bench/port_parity.py <local checkpoint folder>

Both sides get the same token ids (biolm's tokenizer read from the folder, ``tokenizer=pretrained``)
for a batch of unequal lengths with an N and a length not divisible by 6, in fp32 on the CPU, in
eval mode. Printed: the last hidden state's max |difference| over real tokens and, where both sides
have the LM head, the logits'. The reference is ``transformers.AutoModel`` (``trust_remote_code`` only
with ``--remote-code``, for the families transformers lacks: NT v2, DNABERT-2, HyenaDNA, GENA-LM), so
this script is the one place biolm runs a checkpoint's own code, on the user's request. Exit 0 when
every difference is under ``--tol`` (default 1e-4; Hyena's FFT at long lengths may need 1e-3).
"""

from __future__ import annotations

import argparse
import sys

import torch

from biolm.checkpoints import resolve_pretrained
from biolm.errors import BiolmError
from biolm.models import build_language_model
from biolm.models.hub import detect_family
from biolm.tokenizers.checkpoint import from_checkpoint

SEQUENCES = ["ATTCCGATTCCGATTCCG", "ATTTCTCTCTCTCTCTGAGATCGATCGATCGAT", "ACGTNACGTACGTTTGACCA" * 3]


def reference_outputs(source: str, revision: str | None, remote_code: bool, ids: torch.Tensor, mask: torch.Tensor):
    """(last hidden state, logits or None) of the reference implementation."""
    import transformers

    kwargs = {"revision": revision, "trust_remote_code": remote_code}
    logits = None
    try:
        model = transformers.AutoModelForMaskedLM.from_pretrained(source, **kwargs)
    except (ValueError, KeyError, OSError):
        model = transformers.AutoModelForCausalLM.from_pretrained(source, **kwargs)
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = getattr(out, "hidden_states", None)
    hidden = hidden[-1] if hidden is not None else out[0]
    logits = getattr(out, "logits", None)
    return hidden.float(), None if logits is None else logits.float()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a Hugging Face Hub id or a local checkpoint folder")
    parser.add_argument("--revision", default=None, help="the Hub revision (commit) to pin")
    parser.add_argument("--remote-code", action="store_true", help="let transformers run the checkpoint's modelling code (reference side only)")
    parser.add_argument("--tol", type=float, default=1e-4, help="largest accepted max |difference|")
    args = parser.parse_args(argv)

    folder = resolve_pretrained(args.checkpoint)
    family = detect_family(folder)
    tokenizer = from_checkpoint(folder)
    rows = [torch.as_tensor(ids) for ids in tokenizer.encode_batch(SEQUENCES)]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    spec = {"trunk": {"_target_": family}, "pretrained": str(folder)}
    try:  # with the checkpoint's LM head, when it has one: then the logits are compared too
        ours, with_head = build_language_model(spec, tokenizer.vocab_size, tokenizer.pad_id, require_lm_head=True).eval(), True
    except BiolmError:
        ours, with_head = build_language_model(spec, tokenizer.vocab_size, tokenizer.pad_id).eval(), False
    with torch.no_grad():
        out = ours(ids, mask)
    ref_hidden, ref_logits = reference_outputs(args.checkpoint, args.revision, args.remote_code, ids, mask)
    real = mask.bool()
    print(f"checkpoint  {args.checkpoint}  family {family.rsplit('.', 1)[-1]}  tokenizer {tokenizer!r}")
    print(f"token ids   {[r.tolist()[:8] for r in rows]} ...")
    diffs = {"hidden": (out.hidden[real] - ref_hidden[real]).abs().max().item()}
    if ref_logits is not None and with_head:
        width = min(out.logits.shape[-1], ref_logits.shape[-1])
        diffs["logits"] = (out.logits[real][:, :width] - ref_logits[real][:, :width]).abs().max().item()
    for name, value in diffs.items():
        print(f"max |diff| {name:7s} {value:.3e}  ({'ok' if value < args.tol else 'FAILS'} at tol {args.tol:g})")
    return 0 if all(value < args.tol for value in diffs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
