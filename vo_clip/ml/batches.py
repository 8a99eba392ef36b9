"""Training batches: previews decoded once, augmented as tensors, captions drawn per step.

Decoding a PNG costs more than a small model's forward pass, so every preview is decoded
once into a grayscale ``uint8`` tensor at the model's input size (previews are gray;
one byte per pixel keeps 50,000 previews at 224 px under 2.5 GB). Augmentation — a
random multiple of 90° (the sky has no up), a random crop, optionally a mirror image and
a random gamma on the stretched pixels (previews of one target differ in stretch) — then
works on tensors.

A caption longer than the text tower's context is *word-subsampled*: a random subset of
its words, kept in their order, that fills the context exactly. Each step sees another
subset, so a 300-word abstract is not cut to its first 70 words for the whole run.

Under LiT a batch can also carry *bank negatives*: one caption variant of every training
proposal outside the batch, as cached trunk features (``TrainSettings.bank_negatives``).

Every random draw comes from one ``numpy`` generator, in a fixed order (the epoch's
permutation, then per batch the caption choices, the bank negatives' variants, then the
augmentation), so a run is a function of its seed and a resumed run can restore the
generator mid-epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import VoClipError
from .model import (
    ClipModel,
    context_length,
    has_frozen_text_trunk,
    load_image,
    text_trunk_features,
    token_counter,
)
from .pairs import Pairs, caption_variants
from .pixels import decoded_batches, embedding_settings

__all__ = ["Batch", "TrainingBatches", "WordSubsampler", "decode_previews", "same_proposal"]


@dataclass
class Batch:
    """Model-ready inputs; ``texts`` are token ids, or trunk features under LiT.

    ``negatives`` are trunk features of captions that answer no preview of the batch.
    """

    images: torch.Tensor
    texts: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.targets)


class WordSubsampler:
    """Fits a caption into the text context by keeping a random, ordered subset of words."""

    def __init__(self, model: ClipModel):
        self.count = lru_cache(maxsize=200_000)(token_counter(model))
        self.budget = context_length(model) - 2  # start and end tokens

    def fits(self, text: str) -> bool:
        return sum(self.count(w) for w in text.split()) <= self.budget

    def sample(self, text: str, rng: np.random.Generator) -> str:
        """``text`` itself when it fits (no random draw), else a fresh subset of its words."""
        words = text.split()
        counts = np.array([self.count(w) for w in words])
        if counts.sum() <= self.budget:
            return text
        order = rng.permutation(len(words))
        keep = np.sort(order[np.cumsum(counts[order]) <= self.budget])
        return " ".join(words[i] for i in keep)


class TrainingBatches:
    """The training pairs, served as shuffled, augmented batches of ``batch_size``."""

    def __init__(self, model: ClipModel, pairs: Pairs, settings, rng: np.random.Generator,
                 *, progress: bool = True):
        self.model, self.pairs, self.settings, self.rng = model, pairs, settings, rng
        self.size = model.card.image_size
        self.mean = torch.tensor(model.card.preprocess["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(model.card.preprocess["std"]).view(1, 3, 1, 1)
        self.pixels = decode_previews(pairs.paths, self.size, progress=progress)
        self.frozen = settings.lock_text and has_frozen_text_trunk(model)
        self.words = WordSubsampler(model)
        self.texts, self.text_rows = self._caption_bank()
        if self.frozen:
            self.features = text_trunk_features(model, self.texts)
        if settings.bank_negatives and not self.frozen:
            raise VoClipError("bank negatives need cached text features: a locked "
                              "Hugging Face text tower (lock_text)")
        self.bank = self._proposal_rows() if settings.bank_negatives else None
        n = len(pairs)
        self.starts = [s for s in range(0, n, settings.batch_size) if n - s >= 2]

    def __len__(self) -> int:
        """Batches per epoch (a last batch of one pair has no negative and is dropped)."""
        return len(self.starts)

    def epoch_order(self) -> np.ndarray:
        return self.rng.permutation(len(self.pairs))

    def batch(self, order: np.ndarray, number: int) -> Batch:
        """Batch ``number`` of the epoch whose pairs come in ``order``."""
        start = self.starts[number]
        idx = order[start:start + self.settings.batch_size]
        targets = same_proposal(self.pairs.proposals[idx])
        rows = [self.text_rows[i][self.rng.integers(len(self.text_rows[i]))] for i in idx]
        texts = self._texts(rows)
        negatives = self._negatives(idx) if self.bank is not None else None
        return Batch(self.images(idx, augment=True), texts, targets, negatives)

    def first_batch(self) -> Batch:
        """The first ``batch_size`` pairs as they are: no random draw, for initialisation."""
        idx = np.arange(min(self.settings.batch_size, len(self.pairs)))
        targets = same_proposal(self.pairs.proposals[idx])
        texts = (self.features[[r[0] for r in (self.text_rows[i] for i in idx)]]
                 if self.frozen else self.model.tokenize([self.pairs.captions[i] for i in idx]))
        return Batch(self.images(idx, augment=False), texts.to(self.model.device), targets)

    def images(self, idx, *, augment: bool, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """Model inputs of rows ``idx`` of ``pixels`` (default: the training previews)."""
        x = (self.pixels if pixels is None else pixels)[idx].float().div_(255).unsqueeze(1)
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
        if self.settings.flips and self.rng.integers(2):
            x = torch.flip(x, dims=(3,))
        if self.settings.stretch_jitter:
            jitter = self.settings.stretch_jitter
            x = x.clamp_min(0).pow(float(np.exp(self.rng.uniform(-jitter, jitter))))
        return x

    def _caption_bank(self) -> tuple[list[str], list[list[int]]]:
        """Every caption variant once, and for each pair the rows of its variants.

        Summaries add re-phrasings (``caption_variants``). Under LiT the text features
        are computed once, so an over-long caption enters the bank as a few word
        subsets; otherwise it is subsampled afresh at every step.
        """
        texts, rows, seen = [], [], {}
        n = self.settings.caption_variants if self.pairs.summaries else 0
        for i, caption in enumerate(self.pairs.captions):
            key = (self.pairs.proposals[i], caption)
            if key not in seen:
                variants = [caption]
                if n:
                    variants += caption_variants(*self.pairs.summaries[i], self.rng, n)
                if self.frozen:
                    variants = [v for text in variants for v in self._subsets(text)]
                seen[key] = list(range(len(texts), len(texts) + len(variants)))
                texts += variants
            rows.append(seen[key])
        return texts, rows

    def _subsets(self, text: str) -> list[str]:
        if self.words.fits(text):
            return [text]
        count = max(4, self.settings.caption_variants)
        return [self.words.sample(text, self.rng) for _ in range(count)]

    def _proposal_rows(self) -> dict[str, list[int]]:
        """Each training proposal's caption-bank rows (its summary's variants)."""
        bank: dict[str, list[int]] = {}
        for proposal, rows in zip(self.pairs.proposals.tolist(), self.text_rows):
            bank.setdefault(proposal, [])
            bank[proposal] += [r for r in rows if r not in bank[proposal]]
        return {p: bank[p] for p in sorted(bank)}

    def _negatives(self, idx) -> torch.Tensor:
        """One randomly chosen variant of every proposal without a pair in the batch."""
        inside = set(self.pairs.proposals[idx].tolist())
        choices = [rows for proposal, rows in self.bank.items() if proposal not in inside]
        if not choices:
            return self.features[:0].to(self.model.device)
        picks = self.rng.integers(0, [len(rows) for rows in choices])
        return self.features[[rows[k] for rows, k in zip(choices, picks)]].to(self.model.device)

    def _texts(self, rows: list[int]) -> torch.Tensor:
        if self.frozen:
            return self.features[rows].to(self.model.device)
        texts = [self.words.sample(self.texts[r], self.rng) for r in rows]
        return self.model.tokenize(texts).to(self.model.device)


def same_proposal(proposals: np.ndarray) -> torch.Tensor:
    """The contrastive targets of a batch: 1 where preview ``i`` and caption ``j`` share a
    proposal (and so a caption)."""
    return torch.tensor(proposals[:, None] == proposals[None, :], dtype=torch.float32)


def decode_previews(paths, size: int, *, progress: bool = False) -> torch.Tensor:
    """Every preview as a grayscale ``size``-pixel ``uint8`` tensor, decoded in threads."""
    out = torch.empty((len(paths), size, size), dtype=torch.uint8)
    _, workers = embedding_settings("cpu")

    def decode(path) -> np.ndarray:
        return np.array(load_image(path).convert("L").resize((size, size), resample=3))

    row = 0
    with tqdm(total=len(paths), desc="decoding previews", unit="img",
              disable=not progress) as bar:
        for chunk in decoded_batches(paths, decode, 64, workers):
            out[row:row + len(chunk)] = torch.from_numpy(np.stack(chunk))
            row += len(chunk)
            bar.update(len(chunk))
    return out
