"""Contrastive fine-tuning, the PAPERCLIP way, on any archive.

Every observation is paired with its proposal's caption (its summary or its abstract);
validation holds out whole proposals. The loop optimises a contrastive loss (softmax
InfoNCE or sigmoid, :mod:`.losses`) over batches from :mod:`.batches`, evaluates on the
held-out proposals, and keeps the weights of the best evaluation by top-10 % retrieval,
the paper's headline metric.

Two recipes are named: :data:`PAPERCLIP_RECIPE` (the paper's fine-tuning of CLIP
ViT-B/16: AdamW, lr 1e-5, weight decay 1e-3, batch 32, 2,000 warm-up steps, then a
cosine decay) and :data:`DEMO_RECIPE` (the shipped demo model: a small image tower
trained from scratch against a locked text tower, LiT).

Given a run directory (:class:`~.training_run.TrainingRun`) the loop saves its whole
state at every evaluation and when interrupted (SIGINT or SIGTERM: the step in flight
finishes first), and a resumed run continues the same curve: same batches, same
augmentations, same losses.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import VoClipError
from .batches import Batch, TrainingBatches, decode_previews, same_proposal
from .checkpoint import fingerprint
from .freezing import apply_freezing, check_freezing, frozen_towers
from .losses import LOSSES, alignment_loss, clamp_temperature, contrastive_loss
from .model import ClipModel, text_projection, text_trunk_features
from .pairs import CAPTION_SOURCES, Pairs, archive_pairs, split_by_proposal
from .training_run import TrainingRun

__all__ = ["DEMO_RECIPE", "PAPERCLIP_RECIPE", "PRECISIONS", "RECIPES", "RECIPE_BASES",
           "TrainResult", "TrainSettings", "TrainingInterrupted", "train"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Small gradients and optimiser moments become subnormal floats after a few epochs, and
# CPUs compute those many times slower (steps went from 0.4 s to 2.3 s). Flushing them
# to zero changes no result measurably. The flag is per thread and inherited by threads
# created later, so it is set when training is imported, before torch starts its pools.
_FLUSHED_AT_IMPORT = torch.set_flush_denormal(True)


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of a run; the defaults are PAPERCLIP's recipe.

    ``batch_size`` is the contrastive batch (the negatives each pair sees);
    ``accumulation`` computes it in that many parts to fit memory, with the same loss
    and gradients. ``max_steps`` (when not 0) replaces ``epochs`` as the length of the
    run; ``eval_every`` (when not 0) evaluates every that many steps besides each epoch.
    ``alignment`` (when not 0) weighs a second term beside the contrastive loss: the mean
    cosine distance of each preview to its own caption. A contrastive loss only ranks, so
    it leaves previews anywhere their captions' differences allow (matched cosine 0.18
    for the MPNet demo model); the term pulls them onto the captions themselves. On the
    demo recipe it raised that cosine but not retrieval (README), so the recipe keeps 0.
    ``flips`` mirrors a batch's previews at random; ``stretch_jitter`` ``j`` raises their
    [0, 1] pixels to a power ``exp(U(-j, j))``, as a softer or harder stretch would.
    ``bank_negatives`` (under ``lock_text`` with cached text features) contrasts each
    preview also with one caption of every training proposal outside its batch.
    """

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-5
    weight_decay: float = 1e-3
    warmup_steps: int = 2000
    loss: str = "softmax"
    alignment: float = 0.0
    bank_negatives: bool = False
    captions: str = "summary"
    caption_variants: int = 0
    val_fraction: float = 0.2
    lock_text: bool = False
    freeze: tuple[str, ...] = ()
    head_only: bool = False
    rotations: bool = True
    crop_scale: float = 0.8
    flips: bool = False
    stretch_jitter: float = 0.0
    accumulation: int = 1
    precision: str = "auto"
    max_steps: int = 0
    eval_every: int = 0
    log_every: int = 10
    seed: int = 0


#: The paper's fine-tuning of CLIP ViT-B/16 (OpenAI weights) on HST previews.
PAPERCLIP_RECIPE = TrainSettings()

#: The demo model: a small image tower from scratch into the space of a locked sentence
#: encoder (LiT with the projection locked too: the demo model's is the identity),
#: re-phrased summaries as text augmentation. ``vo-clip demo --retrain-model`` runs it.
DEMO_RECIPE = TrainSettings(epochs=20, batch_size=64, lr=5e-4, warmup_steps=50,
                            caption_variants=4, lock_text=True, freeze=("text",),
                            crop_scale=0.85)

RECIPES = {"paperclip": PAPERCLIP_RECIPE, "demo": DEMO_RECIPE}

#: The model each recipe starts from.
RECIPE_BASES = {"paperclip": "ViT-B-16:openai", "demo": "demo:untrained"}


class TrainingInterrupted(VoClipError):
    """The run was stopped by a signal; its state is saved where ``run`` says."""

    def __init__(self, step: int, total: int, run: TrainingRun | None):
        where = (f"its state is saved in {run.root}" if run else
                 "nothing was saved (no run directory)")
        super().__init__(f"training interrupted after step {step} of {total}; {where}")
        self.step, self.total, self.run = step, total, run


@dataclass
class TrainResult:
    """What a run produced: the validation log and the best evaluation."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_step: int = 0
    best_val_top10: float = 0.0
    validation_proposals: list[str] = field(default_factory=list)
    train_pairs: int = 0
    val_pairs: int = 0
    steps: int = 0

    def as_training_data(self, archive, settings: TrainSettings) -> dict:
        """The card's ``training_data``: enough to reproduce and to evaluate honestly."""
        return {"archive": archive.name, "archive_fingerprint": archive.fingerprint,
                "train_pairs": self.train_pairs, "val_pairs": self.val_pairs,
                "validation_proposals": self.validation_proposals,
                "settings": asdict(settings), "steps": self.steps,
                "best_epoch": self.best_epoch, "best_step": self.best_step,
                "history": self.history}


def train(model: ClipModel, archive, settings: TrainSettings = PAPERCLIP_RECIPE, *,
          run_dir=None, resume: bool = False, progress: bool = True,
          on_step=None) -> TrainResult:
    """Fine-tune ``model`` in place on ``archive``; end with the best weights by validation.

    Parameters
    ----------
    run_dir : path, optional
        Where the run keeps its resumable state and metrics log (see
        :class:`~.training_run.TrainingRun`); without it nothing is written.
    resume : bool
        Continue the interrupted run in ``run_dir``; ``model`` must be the same base.
    on_step : callable, optional
        Called as ``on_step(step, loss)`` after every optimiser step.

    Raises
    ------
    VoClipError
        On settings that cannot work (too few proposals to split, nothing to train,
        fp16 without CUDA) or a resume whose settings or data differ.
    TrainingInterrupted
        When SIGINT or SIGTERM stopped the run (after saving it, given ``run_dir``).
    """
    _check(settings)
    identity = {"settings": asdict(settings), "archive": archive.fingerprint,
                "base_model": fingerprint(model.module.state_dict())}
    run = TrainingRun(run_dir) if run_dir is not None else None
    if resume:
        if run is None:
            raise VoClipError("cannot resume without a run directory")
        run.check_resumable(identity)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    torch.set_flush_denormal(True)  # for this thread too (see _FLUSHED_AT_IMPORT)
    train_pairs, val_pairs = _split(archive, settings)
    batches = TrainingBatches(model, train_pairs, settings, rng, progress=progress)
    validation = _Validation(model, val_pairs, batches, settings)
    if settings.loss == "sigmoid":
        _ensure_logit_bias(model, batches)
    loop = _Loop(model, batches, validation, settings, rng)
    loop.result.validation_proposals = sorted(set(val_pairs.proposals.tolist()))
    loop.result.train_pairs, loop.result.val_pairs = len(train_pairs), len(val_pairs)
    if resume:
        loop.restore(run)
    else:
        if run is not None:
            run.start(identity)
        loop.evaluate(run)  # step 0: the base model, the curve's start and first "best"
    loop.run(run, progress=progress, on_step=on_step)
    return loop.result


def _check(settings: TrainSettings) -> None:
    choices = {"loss": LOSSES, "captions": CAPTION_SOURCES, "precision": PRECISIONS}
    for name, allowed in choices.items():
        if getattr(settings, name) not in allowed:
            raise VoClipError(f"unknown {name} {getattr(settings, name)!r}; choose one of "
                              f"{', '.join(allowed)}")
    check_freezing(settings.freeze)
    if not settings.alignment >= 0:
        raise VoClipError(f"alignment weight {settings.alignment} must be 0 or more")
    if not 0 <= settings.stretch_jitter <= 2:
        raise VoClipError(f"stretch jitter {settings.stretch_jitter} must lie in 0 ... 2")
    if settings.bank_negatives and not settings.lock_text:
        raise VoClipError("bank negatives need a locked text tower (lock_text, "
                          "`vo-clip train --lock-text`): its caption features are cached")
    if settings.accumulation > settings.batch_size // 2:
        raise VoClipError(f"a batch of {settings.batch_size} cannot be computed in "
                          f"{settings.accumulation} parts of at least 2 pairs")


def _split(archive, settings: TrainSettings) -> tuple[Pairs, Pairs]:
    pairs = archive_pairs(archive, settings.captions)
    val_mask = split_by_proposal(pairs.proposals, settings.val_fraction, settings.seed)
    if val_mask.all() or not val_mask.any():
        raise VoClipError(f"archive {archive.name} has too few proposals to split "
                          f"{settings.val_fraction:.0%} of them off for validation")
    return pairs.subset(~val_mask), pairs.subset(val_mask)


class _Loop:
    """The optimisation loop and everything its future depends on (what a resume restores)."""

    def __init__(self, model: ClipModel, batches: TrainingBatches, validation,
                 settings: TrainSettings, rng: np.random.Generator):
        self.model, self.batches, self.validation = model, batches, validation
        self.settings, self.rng = settings, rng
        self.precision = _Precision.choose(settings.precision, model.device)
        params = apply_freezing(model, freeze=settings.freeze, head_only=settings.head_only,
                                lock_text=settings.lock_text)
        self.frozen = frozen_towers(model)
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr,
                                           weight_decay=settings.weight_decay)
        self.total = settings.max_steps or settings.epochs * len(batches)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(warmup_cosine, warmup=settings.warmup_steps,
                                    total=self.total))
        self.step, self.epoch, self.batch_number, self.order = 0, 1, 0, None
        self.window: list[float] = []      # losses since the last log line
        self.since_eval: list[float] = []  # losses since the last evaluation
        self.best_weights = None
        self.result = TrainResult()

    def run(self, run: TrainingRun | None, *, progress: bool, on_step) -> None:
        bar = tqdm(total=self.total, initial=self.step, desc="training", unit="step",
                   disable=not progress)
        with _deferred_interrupts() as interrupted:
            while self.step < self.total:
                loss = self._one_step()
                bar.update(1)
                bar.set_postfix(epoch=self.epoch, loss=f"{np.mean(self.since_eval[-20:]):.3f}")
                if on_step is not None:
                    on_step(self.step, loss)
                self._log_window(run)
                if self._evaluation_due():
                    self.evaluate(run)
                if self.batch_number == len(self.batches):
                    self.epoch, self.batch_number, self.order = self.epoch + 1, 0, None
                if interrupted.is_set():
                    bar.close()
                    if run is not None:
                        run.save_state(self.state())
                    raise TrainingInterrupted(self.step, self.total, run)
        bar.close()
        self.model.module.load_state_dict(self.best_weights)
        self.model.module.eval()
        self.model.weights_changed()
        self.result.steps = self.step

    def _one_step(self) -> float:
        if self.order is None:
            self.order = self.batches.epoch_order()
        batch = self.batches.batch(self.order, self.batch_number)
        self.model.module.train()
        for tower in self.frozen:
            tower.eval()
        self.optimizer.zero_grad(set_to_none=True)
        loss = _backward(self.model, batch, self.precision, self.settings)
        self.precision.step(self.optimizer)
        self.schedule.step()
        clamp_temperature(self.model.module)
        self.step, self.batch_number = self.step + 1, self.batch_number + 1
        self.window.append(loss)
        self.since_eval.append(loss)
        return loss

    def _evaluation_due(self) -> bool:
        every = self.settings.eval_every
        return (self.batch_number == len(self.batches) or self.step == self.total
                or bool(every and self.step % every == 0))

    def _log_window(self, run: TrainingRun | None) -> None:
        if run is None or (self.step % self.settings.log_every and self.step != self.total):
            return
        run.log({"step": self.step, "epoch": self.epoch,
                 "train_loss": round(float(np.mean(self.window)), 5),
                 "lr": self.schedule.get_last_lr()[0],
                 "temperature": round(self.model.module.logit_scale.detach().exp().item(), 4)})
        self.window = []

    def evaluate(self, run: TrainingRun | None) -> None:
        scores = self.validation()
        train_loss = round(float(np.mean(self.since_eval)), 4) if self.since_eval else None
        record = {"epoch": self.epoch if self.step else 0, "step": self.step,
                  "train_loss": train_loss, **scores}
        self.since_eval = []
        self.result.history.append(record)
        log.info("step %d (epoch %d): %s", self.step, self.epoch, record)
        if self.best_weights is None or scores["val_top10"] >= self.result.best_val_top10:
            self.result.best_val_top10 = scores["val_top10"]
            self.result.best_epoch, self.result.best_step = self.epoch, self.step
            self.best_weights = {k: v.detach().to("cpu", copy=True)
                                 for k, v in self.model.module.state_dict().items()}
            if run is not None:
                run.save_best(self.best_weights)
        if run is not None:
            run.log({"step": self.step, "epoch": self.epoch, "validation": record})
            run.save_state(self.state())

    def state(self) -> dict:
        """Everything the rest of the run depends on (weights of the best step apart)."""
        result = self.result
        return {
            "step": self.step, "epoch": self.epoch, "batch_number": self.batch_number,
            "order": None if self.order is None else torch.from_numpy(self.order),
            "window": self.window, "since_eval": self.since_eval,
            "model": self.model.module.state_dict(),
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.precision.state_dict(),
            "random": {"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state(),
                       "cuda": (torch.cuda.get_rng_state_all()
                                if torch.cuda.is_available() else [])},
            "result": {"history": result.history, "best_epoch": result.best_epoch,
                       "best_step": result.best_step, "best_val_top10": result.best_val_top10},
        }

    def restore(self, run: TrainingRun) -> None:
        state = run.load_state(self.model.device)
        self.model.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.precision.load_state_dict(state["scaler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_number = state["batch_number"]
        self.order = None if state["order"] is None else state["order"].numpy()
        self.window, self.since_eval = list(state["window"]), list(state["since_eval"])
        self.rng.bit_generator.state = state["random"]["numpy"]
        torch.set_rng_state(state["random"]["torch"])
        if state["random"]["cuda"]:
            torch.cuda.set_rng_state_all(state["random"]["cuda"])
        for key, value in state["result"].items():
            setattr(self.result, key, value)
        if run.best.is_file():
            self.best_weights = run.load_best()
        run.truncate_log(self.step)


def _backward(model: ClipModel, batch: Batch, precision: "_Precision",
              settings: TrainSettings) -> float:
    """Back-propagate the batch's loss; return its value.

    With ``accumulation`` > 1 the features of every part are first computed without
    gradients; then each part is recomputed with gradients and put among the others'
    features, so each backward pass adds that part's share of the full batch's gradient
    (every pair still sees all the batch's negatives, unlike averaging small batches).
    """
    parts = _parts(len(batch), settings.accumulation)
    with torch.no_grad(), precision.autocast():
        negatives = (None if batch.negatives is None else
                     F.normalize(text_projection(model)(batch.negatives), dim=-1))
    if len(parts) == 1:
        with precision.autocast():
            loss = _loss(model, *_features(model, batch.images, batch.texts), batch.targets,
                         settings, negatives)
        precision.backward(loss)
        return loss.item()
    with torch.no_grad(), precision.autocast():
        cached = [_features(model, batch.images[p], batch.texts[p]) for p in parts]
    for j, part in enumerate(parts):
        with precision.autocast():
            fresh = _features(model, batch.images[part], batch.texts[part])
            images = torch.cat([fresh[0] if i == j else c[0] for i, c in enumerate(cached)])
            texts = torch.cat([fresh[1] if i == j else c[1] for i, c in enumerate(cached)])
            loss = _loss(model, images, texts, batch.targets, settings, negatives)
        precision.backward(loss)
    # The temperature (and bias) enter every part's loss whole: count them once.
    for name in ("logit_scale", "logit_bias"):
        parameter = getattr(model.module, name, None)
        if isinstance(parameter, torch.nn.Parameter) and parameter.grad is not None:
            parameter.grad /= len(parts)
    return loss.item()


def _parts(n: int, count: int) -> list[slice]:
    bounds = np.linspace(0, n, count + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _features(model: ClipModel, images: torch.Tensor, texts: torch.Tensor):
    image_features = model.module.encode_image(images, normalize=True)
    if texts.dtype.is_floating_point:  # cached trunk features of a locked text tower
        text_features = F.normalize(text_projection(model)(texts), dim=-1)
    else:
        text_features = model.module.encode_text(texts, normalize=True)
    return image_features, text_features


def _loss(model: ClipModel, image_features, text_features, targets,
          settings: TrainSettings, negatives=None) -> torch.Tensor:
    module = model.module
    image_features, text_features = image_features.float(), text_features.float()
    loss = contrastive_loss(settings.loss, image_features, text_features, targets,
                            module.logit_scale, getattr(module, "logit_bias", None),
                            None if negatives is None else negatives.float())
    if settings.alignment:
        loss = loss + settings.alignment * alignment_loss(image_features, text_features)
    return loss


@torch.inference_mode()
def _ensure_logit_bias(model: ClipModel, batches: TrainingBatches) -> None:
    """Give a softmax-trained CLIP the bias the sigmoid loss needs.

    The bias starts at minus the mean logit of the first batch, so the sigmoid starts
    near ½ for a typical pair instead of saturating; the value goes into the card's
    architecture so the checkpoint loads with the parameter in place.
    """
    module = model.module
    if getattr(module, "logit_bias", None) is not None:
        return
    first = batches.first_batch()
    image_features, text_features = _features(model, first.images, first.texts)
    bias = -float((module.logit_scale.exp() * image_features @ text_features.T).mean())
    bias = round(bias, 4)
    with torch.inference_mode(False):
        module.logit_bias = torch.nn.Parameter(torch.tensor(bias, device=model.device))
    model.card = replace(model.card, architecture={**model.card.architecture,
                                                   "init_logit_bias": bias})


class _Validation:
    """Loss and retrieval on the held-out proposals, from previews decoded once."""

    def __init__(self, model: ClipModel, pairs: Pairs, batches: TrainingBatches,
                 settings: TrainSettings):
        self.model, self.pairs, self.batches, self.settings = model, pairs, batches, settings
        self.pixels = decode_previews(pairs.paths, batches.size)
        self.captions, self.caption_of = np.unique(pairs.captions, return_inverse=True)
        # A fixed order mixes proposals, so a validation batch has negatives as in training.
        self.order = np.random.default_rng(settings.seed + 1).permutation(len(pairs))
        # A locked trunk gives the same pooled outputs at every validation: compute once.
        self.trunk = (text_trunk_features(model, list(self.captions)) if batches.frozen
                      else None)

    @torch.inference_mode()
    def __call__(self) -> dict:
        from .evaluate import retrieval_accuracy

        self.model.module.eval()
        images = self._image_features()
        if self.trunk is not None:
            texts = F.normalize(text_projection(self.model)(self.trunk), dim=-1)[self.caption_of]
        else:
            texts = torch.from_numpy(self.model.encode_text(list(self.captions)))[self.caption_of]
        losses = []
        size = self.settings.batch_size
        for start in range(0, len(self.order) - 1, size):
            idx = self.order[start:start + size]
            if len(idx) < 2:
                continue
            losses.append(_loss(self.model, images[idx].to(self.model.device),
                                texts[idx].to(self.model.device),
                                same_proposal(self.pairs.proposals[idx]), self.settings).item())
        accuracy = retrieval_accuracy(texts.numpy(), images.numpy(), [1, 5, 10])
        return {"val_loss": round(float(np.mean(losses)), 4),
                **{f"val_top{k}": round(float(v), 4) for k, v in accuracy.items()}}

    def _image_features(self) -> torch.Tensor:
        out = []
        for start in range(0, len(self.pixels), 128):
            idx = np.arange(start, min(start + 128, len(self.pixels)))
            x = self.batches.images(idx, augment=False, pixels=self.pixels)
            out.append(self.model.module.encode_image(x, normalize=True).float().cpu())
        return torch.cat(out)


@dataclass
class _Precision:
    """Mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling)."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def choose(cls, name: str, device: str) -> "_Precision":
        device_type = "cuda" if str(device).startswith("cuda") else "cpu"
        if name == "auto":
            name = "fp32" if device_type == "cpu" else (
                "bf16" if torch.cuda.is_bf16_supported() else "fp16")
        if name == "fp32":
            return cls(device_type)
        if name == "bf16":
            return cls(device_type, torch.bfloat16)
        if device_type != "cuda":
            raise VoClipError("fp16 mixed precision needs a CUDA device",
                              hint="use --precision bf16 or fp32 on a CPU")
        return cls(device_type, torch.float16, torch.amp.GradScaler("cuda"))

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)


@contextlib.contextmanager
def _deferred_interrupts():
    """SIGINT/SIGTERM set a flag the loop reads after each step; a second one stops at once.

    Only the main thread can install handlers; elsewhere the signals keep their
    default effect.
    """
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.is_set():
            raise KeyboardInterrupt
        flag.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def warmup_cosine(step: int, *, warmup: int, total: int) -> float:
    """The learning-rate factor: linear warm-up over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
