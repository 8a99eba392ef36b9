"""Contrastive fine-tuning: the InfoNCE objective of CLIP and PAPERCLIP.

Every observation is paired with its proposal's caption. A batch of ``B`` previews and
their captions gives a ``B × B`` similarity matrix; the loss is the symmetric cross
entropy that pulls each preview towards its caption and away from the others.
Observations of one proposal share a caption, so the target of a row is spread over all
the columns of its proposal instead of a single diagonal entry (a one-hot target would
push identical captions apart).

With the text trunk locked (LiT, the demo model's recipe), its pooled features are
computed once and only the projection is trained on top of them. Previews are decoded
once into memory; augmentation (random 90° rotations, random crops) works on tensors.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import VoClipError
from .model import (
    ClipModel,
    has_frozen_text_trunk,
    load_image,
    lock_text_trunk,
    text_projection,
    text_trunk_features,
)
from .pairs import Pairs, archive_pairs, caption_variants, split_by_proposal

__all__ = ["TrainResult", "TrainSettings", "train"]

log = logging.getLogger(__name__)

# Small gradients and optimiser moments become subnormal floats after a few epochs, and
# CPUs compute those many times slower (steps went from 0.4 s to 2.3 s). Flushing them
# to zero changes no result measurably. The flag is per thread and inherited by threads
# created later, so it is set when training is imported, before torch starts its pools.
_FLUSHED_AT_IMPORT = torch.set_flush_denormal(True)


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters; the defaults are the demo model's recipe."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 50
    val_fraction: float = 0.2
    captions: str = "summary"
    caption_variants: int = 4
    lock_text: bool = True
    rotations: bool = True
    crop_scale: float = 0.85
    seed: int = 0


@dataclass
class TrainResult:
    """What a run produced: the per-epoch log and the best validation score."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_val_top10: float = 0.0
    validation_proposals: list[str] = field(default_factory=list)
    train_pairs: int = 0
    val_pairs: int = 0

    def as_training_data(self, archive, settings: TrainSettings) -> dict:
        """The card's ``training_data``: enough to reproduce and to evaluate honestly."""
        return {"archive": archive.name, "archive_fingerprint": archive.fingerprint,
                "train_pairs": self.train_pairs, "val_pairs": self.val_pairs,
                "validation_proposals": self.validation_proposals,
                "settings": asdict(settings), "best_epoch": self.best_epoch,
                "history": self.history}


def train(model: ClipModel, archive, settings: TrainSettings = TrainSettings(), *,
          progress: bool = True) -> TrainResult:
    """Fine-tune ``model`` in place on ``archive``; keep the best epoch by validation.

    Raises
    ------
    VoClipError
        If the archive has too few proposals to hold out a validation set.
    """
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    torch.set_flush_denormal(True)  # for this thread too (see _FLUSHED_AT_IMPORT)
    pairs = archive_pairs(archive, settings.captions)
    val_mask = split_by_proposal(pairs.proposals, settings.val_fraction, settings.seed)
    if val_mask.all() or not val_mask.any():
        raise VoClipError(f"archive {archive.name} has too few proposals to split "
                          f"{settings.val_fraction:.0%} of them off for validation")
    train_pairs, val_pairs = pairs.subset(~val_mask), pairs.subset(val_mask)
    batch = _Batcher(model, train_pairs, settings, rng, progress)
    params = _trainable_parameters(model, settings)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(train_pairs) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _warmup_cosine(s, settings.warmup_steps, steps))
    result = TrainResult(validation_proposals=sorted(set(val_pairs.proposals.tolist())),
                         train_pairs=len(train_pairs), val_pairs=len(val_pairs))
    best_state = None
    bar = tqdm(total=steps, desc="training", unit="step", disable=not progress)
    for epoch in range(1, settings.epochs + 1):
        model.module.train()
        losses = []
        for images, texts, targets in batch.epoch():
            loss = _infonce(model, images, texts, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():  # CLIP clamps the temperature at 100
                model.module.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-20:]):.3f}")
        score = _val_top10(model, val_pairs, batch)
        result.history.append({"epoch": epoch, "train_loss": round(float(np.mean(losses)), 4),
                               "val_top10": round(score, 4)})
        log.info("epoch %d: loss %.3f, validation top-10%% %.3f", epoch, np.mean(losses), score)
        if score >= result.best_val_top10:
            result.best_val_top10, result.best_epoch = score, epoch
            best_state = {k: v.detach().clone() for k, v in model.module.state_dict().items()}
    bar.close()
    model.module.load_state_dict(best_state)
    model.module.eval()
    return result


class _Batcher:
    """Decoded previews and caption features of the training pairs, served in batches."""

    def __init__(self, model: ClipModel, pairs: Pairs, settings: TrainSettings, rng, progress):
        self.model, self.pairs, self.settings, self.rng = model, pairs, settings, rng
        self.size = model.card.image_size
        self.mean = torch.tensor(model.card.preprocess["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(model.card.preprocess["std"]).view(1, 3, 1, 1)
        self.pixels = _decode(pairs.paths, self.size, progress)
        self.frozen = settings.lock_text and has_frozen_text_trunk(model)
        self.texts, self.text_rows = self._caption_bank(rng)
        if self.frozen:
            self.features = text_trunk_features(model, self.texts)

    def _caption_bank(self, rng) -> tuple[list[str], list[list[int]]]:
        """Every caption variant once, and for each pair the rows of its variants."""
        texts, rows, seen = [], [], {}
        n = self.settings.caption_variants if self.pairs.summaries else 0
        for i, caption in enumerate(self.pairs.captions):
            key = (self.pairs.proposals[i], caption)
            if key not in seen:
                variants = [caption]
                if n:
                    variants += caption_variants(*self.pairs.summaries[i], rng, n)
                seen[key] = list(range(len(texts), len(texts) + len(variants)))
                texts += variants
            rows.append(seen[key])
        return texts, rows

    def epoch(self):
        order = self.rng.permutation(len(self.pairs))
        size = self.settings.batch_size
        for start in range(0, len(order) - 1, size):
            idx = order[start:start + size]
            if len(idx) < 2:
                continue
            proposals = self.pairs.proposals[idx]
            targets = torch.tensor(proposals[:, None] == proposals[None, :], dtype=torch.float32)
            choice = [self.text_rows[i][self.rng.integers(len(self.text_rows[i]))] for i in idx]
            yield self.images(idx, augment=True), self._texts(choice), targets

    def images(self, idx, *, augment: bool) -> torch.Tensor:
        x = self.pixels[idx].float().div_(255).unsqueeze(1)
        if augment:
            x = self._augment(x)
        return ((x.expand(-1, 3, -1, -1) - self.mean) / self.std).to(self.model.device)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.settings.rotations:
            x = torch.rot90(x, int(self.rng.integers(4)), dims=(2, 3))
        side = int(round(self.size * self.rng.uniform(self.settings.crop_scale, 1.0)))
        if side < self.size:
            top, left = self.rng.integers(0, self.size - side + 1, size=2)
            x = x[:, :, top:top + side, left:left + side]
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x

    def _texts(self, rows):
        if self.frozen:
            return self.features[rows].to(self.model.device)
        return self.model.tokenize([self.texts[r] for r in rows]).to(self.model.device)


def _decode(paths, size: int, progress: bool) -> torch.Tensor:
    """Every preview as a grayscale ``size``-pixel uint8 tensor (previews are gray)."""
    out = torch.empty((len(paths), size, size), dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, desc="decoding previews", unit="img",
                                  disable=not progress)):
        image = load_image(path).convert("L").resize((size, size), resample=3)  # bicubic
        out[i] = torch.from_numpy(np.array(image))
    return out


def _infonce(model: ClipModel, images, texts, targets) -> torch.Tensor:
    image_features = model.module.encode_image(images, normalize=True)
    if texts.dtype.is_floating_point:  # cached trunk features of a locked text tower
        text_features = F.normalize(text_projection(model)(texts), dim=-1)
    else:
        text_features = model.module.encode_text(texts, normalize=True)
    logits = model.module.logit_scale.exp() * image_features @ text_features.T
    targets = targets.to(logits.device)
    per_image = targets / targets.sum(1, keepdim=True)
    per_text = targets.T / targets.T.sum(1, keepdim=True)
    return (F.cross_entropy(logits, per_image) + F.cross_entropy(logits.T, per_text)) / 2


@torch.inference_mode()
def _val_top10(model: ClipModel, pairs: Pairs, batch: _Batcher) -> float:
    """Fraction of validation captions whose own preview ranks in the top 10%."""
    model.module.eval()
    pixels = _decode(pairs.paths, batch.size, progress=False)
    x = ((pixels.float().div(255).unsqueeze(1).expand(-1, 3, -1, -1) - batch.mean) / batch.std)
    image_features = torch.cat([model.module.encode_image(x[i:i + 128].to(model.device),
                                                          normalize=True).float().cpu()
                                for i in range(0, len(x), 128)]).numpy()
    text_features = model.encode_text(pairs.captions)
    from .evaluate import retrieval_accuracy

    return float(retrieval_accuracy(text_features, image_features, [10])[10])


def _trainable_parameters(model: ClipModel, settings: TrainSettings):
    if settings.lock_text:
        lock_text_trunk(model)
    params = [p for p in model.module.parameters() if p.requires_grad]
    if not params:
        raise VoClipError("nothing to train: every parameter is frozen")
    return params


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
