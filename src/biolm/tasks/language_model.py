"""One LightningModule for genome pretraining: masked LM (BERT family) and causal LM (HyenaDNA).

In: batches ``{"input_ids": (B, L), "attention_mask": (B, L)}`` of tokenised genome windows and
a `LanguageModel` mapping them to ``(B, L, V)`` logits.
Out: cross-entropy over predicted tokens (masked ones for MLM, every next token for CLM; special
tokens are never targets), logged as ``train/loss``; validation logs ``val/loss`` (mean nats per
predicted token), ``val/perplexity`` and ``val/bits_per_base`` (bits per predicted token divided
by the bases each predicted token stands for, so char, k-mer and BPE runs are comparable).
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F

from biolm.data.masking import bases_per_predicted_token, causal_lm_labels, mask_tokens
from biolm.errors import BiolmError
from biolm.tasks.sequence import configure_adamw

OBJECTIVES = ("mlm", "clm")


def pass_epoch_to_datamodule(module: L.LightningModule) -> None:
    """Tell a data module that draws (or augments) per epoch which epoch starts."""
    datamodule = getattr(module.trainer, "datamodule", None)
    if datamodule is not None and hasattr(datamodule, "set_epoch"):
        datamodule.set_epoch(module.current_epoch)


class LanguageModelTask(L.LightningModule):
    """Pretrains a `LanguageModel` with a masked or causal LM objective.

    Args:
        model: trunk + LM head.
        tokenizer: the run's tokenizer (special ids, k-mer geometry for span masking).
        objective: ``mlm`` or ``clm``.
        mlm_probability: share of tokens selected for prediction (MLM).
        lr, weight_decay, warmup_ratio, betas: AdamW and its linear warm-up/decay schedule.
        seed: seeds the validation masks, so that every validation pass scores the same tokens.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        objective: str = "mlm",
        mlm_probability: float = 0.15,
        lr: float = 5e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        seed: int = 0,
    ):
        super().__init__()
        if objective not in OBJECTIVES:
            raise BiolmError(f"objective.name: unknown objective {objective!r}; accepted: {', '.join(OBJECTIVES)}")
        self.model = model
        self.tokenizer = tokenizer
        self.objective = objective
        self.mlm_probability = mlm_probability
        self.lr, self.weight_decay, self.warmup_ratio, self.betas = lr, weight_decay, warmup_ratio, tuple(betas)
        self.seed = seed
        self.bases_per_token = bases_per_predicted_token(tokenizer)
        self.special_ids = torch.tensor(list(tokenizer.special_ids))  # every role the tokenizer has (NT has no [SEP])
        self._val_nll = 0.0
        self._val_tokens = 0

    def _inputs_and_labels(self, batch, generator: torch.Generator | None):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.objective == "mlm":
            return (*mask_tokens(ids, mask, self.tokenizer, self.mlm_probability, generator=generator), mask)
        labels = causal_lm_labels(ids, mask)
        labels = labels.masked_fill(torch.isin(labels, self.special_ids.to(labels.device)), -100)
        return ids, labels, mask

    def _nll(self, batch, generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy (nats) over predicted tokens, and how many there were."""
        inputs, labels, mask = self._inputs_and_labels(batch, generator)
        predicted = labels != -100  # (B, L)
        logits = self.model(inputs, mask, predicted).logits  # (N, V): only the predicted positions
        total = F.cross_entropy(logits.float(), labels[predicted], reduction="sum")
        return total, int(predicted.sum())

    def on_train_batch_start(self, batch, batch_idx) -> None:
        # Masks and dropout drawn from (seed, epoch, batch, rank): a run resumed from a checkpoint
        # continues exactly as the uninterrupted run would have.
        torch.manual_seed(hash((self.seed, self.current_epoch, batch_idx, self.global_rank)) % (2**63))

    def training_step(self, batch, batch_idx):
        total, count = self._nll(batch, None)
        loss = total / max(count, 1)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def on_train_epoch_start(self) -> None:
        pass_epoch_to_datamodule(self)

    def on_validation_epoch_start(self) -> None:
        self._val_nll, self._val_tokens = 0.0, 0

    def _validation_generator(self, batch_idx: int) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + batch_idx)

    def validation_step(self, batch, batch_idx):
        total, count = self._nll(batch, self._validation_generator(batch_idx))
        self._val_nll += float(total)
        self._val_tokens += count

    @torch.inference_mode()
    def score(self, loader) -> dict[str, float]:
        """Held-out metrics of the current weights over every batch of ``loader`` (same masks as validation).

        Returns:
            ``loss`` (nats per predicted token), ``perplexity``, ``bits_per_base`` and ``predicted_tokens``.
        """
        was_training = self.model.training
        self.model.eval()
        nll, tokens = 0.0, 0
        for batch_idx, batch in enumerate(loader):
            batch = {key: value.to(self.device) for key, value in batch.items()}
            total, count = self._nll(batch, self._validation_generator(batch_idx))
            nll, tokens = nll + float(total), tokens + count
        self.model.train(was_training)
        if tokens == 0:
            raise BiolmError("no token to score: the held-out windows are empty")
        loss = nll / tokens
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_base": loss / math.log(2) / self.bases_per_token,
            "predicted_tokens": float(tokens),
        }

    def on_validation_epoch_end(self) -> None:
        totals = torch.tensor([self._val_nll, float(self._val_tokens)], dtype=torch.float64, device=self.device)
        totals = self.all_gather(totals)
        if totals.dim() > 1:
            totals = totals.sum(dim=0)
        nll, tokens = float(totals[0]), float(totals[1])
        if tokens == 0:
            return
        loss = nll / tokens
        self.log_dict(
            {
                "val/loss": loss,
                "val/perplexity": math.exp(min(loss, 50.0)),
                "val/bits_per_base": loss / math.log(2) / self.bases_per_token,
            },
            prog_bar=True,
            rank_zero_only=True,
        )

    def configure_optimizers(self):
        return configure_adamw(self, self.lr, self.weight_decay, self.warmup_ratio, self.betas)
