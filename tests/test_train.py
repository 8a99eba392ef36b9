"""Fine-tuning: the paper's recipe, exact gradient accumulation, freezing, and resume.

Small open_clip CLIPs (a ViT and a text transformer with the real CLIP tokenizer,
randomly initialised) train on small demo archives; the slow test trains one on the
full demo archive for a few hundred steps and checks it learns what the shuffled
baseline cannot.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURE, assert_one_line_error, run_cli
from PIL import Image

from vo_clip.archive.demo import build_demo_archive
from vo_clip.errors import VoClipError
from vo_clip.ml.model import create_model, load_model
from vo_clip.ml.plots import write_training_curve
from vo_clip.ml.towers import MINILM
from vo_clip.ml.train import (
    PAPERCLIP_RECIPE,
    RECIPE_BASES,
    TrainingInterrupted,
    TrainSettings,
    train,
)
from vo_clip.ml.training_run import TrainingRun

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Short runs on the small archive: every setting a test does not name.
QUICK = replace(PAPERCLIP_RECIPE, max_steps=24, batch_size=16, lr=1e-3, warmup_steps=4,
                eval_every=8)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-demo") / "archive"
    return build_demo_archive(root, n_observations=160, n_proposals=30, preview_size=64,
                              seed=7, progress=False)


def tiny_model(seed: int = 0):
    return create_model(TINY_ARCHITECTURE, seed=seed, name="tiny", device="cpu")


def test_defaults_are_the_papers_recipe():
    recipe = TrainSettings()
    assert (recipe.lr, recipe.weight_decay, recipe.batch_size, recipe.warmup_steps) == (
        1e-5, 1e-3, 32, 2000)
    assert recipe.loss == "softmax" and recipe.rotations and recipe.crop_scale < 1
    assert RECIPE_BASES["paperclip"] == "ViT-B-16:openai"


@pytest.mark.parametrize("alignment", [0.0, 1.0])
def test_accumulated_gradients_equal_the_whole_batch(small_demo, alignment):
    from vo_clip.ml.batches import TrainingBatches
    from vo_clip.ml.train import _backward, _Precision, _split

    grads = []
    for parts in (1, 4):
        model = tiny_model()
        settings = replace(QUICK, accumulation=parts, alignment=alignment)
        train_pairs, _ = _split(small_demo, settings)
        batches = TrainingBatches(model, train_pairs, settings, np.random.default_rng(0),
                                  progress=False)
        batch = batches.batch(batches.epoch_order(), 0)
        model.module.train()
        _backward(model, batch, _Precision("cpu"), settings)
        grads.append({n: p.grad.clone() for n, p in model.module.named_parameters()
                      if p.grad is not None})
    whole, accumulated = grads
    assert whole.keys() == accumulated.keys() and "logit_scale" in whole
    for name, grad in whole.items():
        torch.testing.assert_close(accumulated[name], grad, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("choice, moves", [
    ({"freeze": ("image",)}, lambda name: not name.startswith("visual.")),
    ({"freeze": ("text",)}, lambda name: name.startswith("visual.") or name == "logit_scale"),
    ({"head_only": True}, lambda name: name in ("visual.proj", "text_projection",
                                                "logit_scale")),
])
def test_frozen_weights_do_not_move(small_demo, choice, moves):
    model = tiny_model()
    before = {n: p.detach().clone() for n, p in model.module.named_parameters()}
    train(model, small_demo, replace(QUICK, max_steps=3, **choice), progress=False)
    after = dict(model.module.named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n].detach())}
    assert changed == {n for n in before if moves(n)}


def test_alignment_pulls_previews_onto_their_captions(small_demo):
    from vo_clip.ml.pairs import archive_pairs

    pairs = archive_pairs(small_demo)
    matched = {}
    for weight in (0.0, 4.0):
        model = tiny_model()
        train(model, small_demo, replace(QUICK, alignment=weight), progress=False)
        images = model.encode_images(pairs.paths)
        matched[weight] = float(np.mean(np.sum(images * model.encode_text(pairs.captions), 1)))
    assert matched[4.0] > matched[0.0] + 0.1, matched


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_a_negative_alignment_weight_is_refused(small_demo, weight):
    with pytest.raises(VoClipError, match="alignment weight"):
        train(tiny_model(), small_demo, replace(QUICK, alignment=weight), progress=False)


def test_nothing_left_to_train_is_refused(small_demo):
    with pytest.raises(VoClipError, match="nothing to train"):
        train(tiny_model(), small_demo, replace(QUICK, freeze=("image", "text")),
              progress=False)


def test_long_captions_are_word_subsampled_to_the_context():
    from vo_clip.ml.batches import WordSubsampler

    words = WordSubsampler(tiny_model())
    text = " ".join(f"word{i} of a long abstract," for i in range(60))
    rng = np.random.default_rng(0)
    first, second = words.sample(text, rng), words.sample(text, rng)
    assert first != second
    for sample in (first, second):
        kept = sample.split()
        assert sum(words.count(w) for w in kept) <= words.budget
        assert sum(words.count(w) for w in kept) > words.budget - 8  # the context is filled
        positions = iter(text.split())
        assert all(any(w == p for p in positions) for w in kept)  # a subsequence, in order
    state = rng.bit_generator.state
    assert words.sample("a short caption", rng) == "a short caption"
    assert rng.bit_generator.state == state  # nothing drawn for a caption that fits


def test_abstract_captions_train(small_demo):
    result = train(tiny_model(), small_demo, replace(QUICK, captions="abstract", max_steps=4,
                                                     eval_every=0), progress=False)
    assert np.isfinite(result.history[-1]["val_loss"])


def test_sigmoid_loss_adds_a_bias_that_the_checkpoint_keeps(small_demo, tmp_path):
    model = tiny_model()
    result = train(model, small_demo, replace(QUICK, loss="sigmoid", max_steps=8),
                   progress=False)
    assert all(np.isfinite(h["val_loss"]) for h in result.history)
    bias = model.module.logit_bias.item()
    model.save(tmp_path / "sigmoid.safetensors")
    loaded = load_model(str(tmp_path / "sigmoid.safetensors"), device="cpu")
    assert loaded.module.logit_bias.item() == pytest.approx(bias)


def test_bf16_autocast_trains_on_cpu_and_fp16_asks_for_cuda(small_demo):
    result = train(tiny_model(), small_demo, replace(QUICK, precision="bf16", max_steps=4),
                   progress=False)
    assert np.isfinite(result.history[-1]["val_loss"])
    with pytest.raises(VoClipError, match="needs a CUDA device"):
        train(tiny_model(), small_demo, replace(QUICK, precision="fp16"), progress=False)


def _augmented(small_demo, n_draws, **settings):
    from vo_clip.ml.batches import TrainingBatches
    from vo_clip.ml.train import _split

    settings = replace(QUICK, rotations=False, crop_scale=1.0, **settings)
    batches = TrainingBatches(tiny_model(), _split(small_demo, settings)[0], settings,
                              np.random.default_rng(0), progress=False)
    x = batches.pixels[:4].float().div(255).unsqueeze(1)
    return x, [batches._augment(x.clone()) for _ in range(n_draws)]


def test_flips_mirror_some_batches_and_leave_the_others(small_demo):
    x, outs = _augmented(small_demo, 24, flips=True)
    mirrored = [torch.equal(out, torch.flip(x, dims=(3,))) for out in outs]
    unchanged = [torch.equal(out, x) for out in outs]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 4 <= sum(mirrored) <= 20
    assert not torch.equal(x, torch.flip(x, dims=(3,)))  # the previews are not symmetric


def test_stretch_jitter_is_a_random_gamma_within_its_range(small_demo):
    x, outs = _augmented(small_demo, 12, stretch_jitter=0.5)
    bright = x > 0.05  # where log(out) / log(x) is well defined and informative
    assert bright.sum() > 100 and (x < 1).all()
    gammas = []
    for out in outs:
        ratio = torch.log(out[bright]) / torch.log(x[bright])
        assert float(ratio.max() - ratio.min()) < 1e-3  # one power for the whole batch
        gammas.append(float(ratio.mean()))
    assert all(np.exp(-0.5) - 1e-3 <= g <= np.exp(0.5) + 1e-3 for g in gammas), gammas
    assert max(gammas) - min(gammas) > 0.2
    assert all(torch.equal(out[x == 0], x[x == 0]) for out in outs)  # black stays black
    _, same = _augmented(small_demo, 3)
    assert all(torch.equal(out, x) for out in same)  # nothing asked, nothing changed


@pytest.mark.parametrize("jitter", [-0.1, 2.5, float("nan")])
def test_a_stretch_jitter_outside_its_range_is_refused(small_demo, jitter):
    with pytest.raises(VoClipError, match="stretch jitter"):
        train(tiny_model(), small_demo, replace(QUICK, stretch_jitter=jitter), progress=False)


# --- LiT: bank negatives -----------------------------------------------------------------

#: LiT on the small archive: a tiny image tower into all-MiniLM-L6-v2's locked space (a
#: ViT: batch norm would make the per-part statistics of accumulation differ).
LIT_ARCHITECTURE = {
    "embed_dim": 384,
    "vision_cfg": TINY_ARCHITECTURE["vision_cfg"],
    "text_cfg": {"hf_model_name": MINILM, "hf_tokenizer_name": MINILM,
                 "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear",
                 "context_length": 128},
}
LIT = replace(QUICK, lock_text=True, freeze=("text",), caption_variants=2, batch_size=8)


@pytest.fixture(scope="module")
def lit_model():
    """A fresh LiT model per call; the tower is read once for the module."""
    first = create_model(LIT_ARCHITECTURE, seed=0, name="lit", device="cpu")
    state = {k: v.clone() for k, v in first.module.state_dict().items()}

    def make():
        model = create_model(LIT_ARCHITECTURE, seed=0, name="lit", device="cpu")
        model.module.load_state_dict(state)
        return model
    return make


def _lit_batches(model, small_demo, settings, seed=0):
    from vo_clip.ml.batches import TrainingBatches
    from vo_clip.ml.train import _split

    train_pairs, _ = _split(small_demo, settings)
    return TrainingBatches(model, train_pairs, settings, np.random.default_rng(seed),
                           progress=False)


def test_bank_negatives_are_one_caption_of_every_proposal_outside_the_batch(small_demo,
                                                                              lit_model):
    batches = _lit_batches(lit_model(), small_demo, replace(LIT, bank_negatives=True))
    order = batches.epoch_order()
    for number in (0, 1, len(batches) - 1):
        batch = batches.batch(order, number)
        inside = set(batches.pairs.proposals[order[
            batches.starts[number]:batches.starts[number] + LIT.batch_size]].tolist())
        outside = sorted(set(batches.pairs.proposals.tolist()) - inside)
        assert inside and outside and len(batch.negatives) == len(outside)
        for proposal, negative in zip(outside, batch.negatives):
            rows = batches.bank[proposal]
            assert len(rows) >= 2  # the summary and its re-phrasings
            assert any(torch.equal(negative, batches.features[r]) for r in rows), proposal
    plain = _lit_batches(lit_model(), small_demo, LIT)
    assert plain.bank is None and plain.batch(plain.epoch_order(), 0).negatives is None


def test_bank_negatives_enter_the_loss_and_keep_accumulation_exact(small_demo, lit_model):
    from vo_clip.ml.train import _backward, _Precision

    settings = replace(LIT, bank_negatives=True)
    batch = _lit_batches(lit_model(), small_demo, settings).batch(
        np.arange(len(_lit_batches(lit_model(), small_demo, settings).pairs)), 0)
    losses, grads = {}, []
    for parts, negatives in ((1, None), (1, batch.negatives), (4, batch.negatives)):
        model = lit_model()
        model.module.train()
        losses[parts, negatives is None] = _backward(
            model, replace(batch, negatives=negatives), _Precision("cpu"),
            replace(settings, accumulation=parts))
        grads.append({n: p.grad.clone() for n, p in model.module.named_parameters()
                      if p.grad is not None})
    # More captions to rank below each preview's own: a higher cross entropy.
    assert losses[1, False] > losses[1, True] + 0.1, losses
    assert losses[4, False] == pytest.approx(losses[1, False], rel=1e-5)
    _, whole, accumulated = grads
    assert whole.keys() == accumulated.keys() and "logit_scale" in whole
    assert not any(name.startswith("text.transformer") for name in whole)
    for name, grad in whole.items():
        torch.testing.assert_close(accumulated[name], grad, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_far_bank_negatives_change_nothing_and_copies_of_the_positives_cost(loss):
    from vo_clip.ml.losses import contrastive_loss

    unit = partial(torch.nn.functional.normalize, dim=-1)
    generator = torch.Generator().manual_seed(0)
    images = unit(torch.randn(6, 16, generator=generator))
    texts = unit(images + 0.1 * torch.randn(6, 16, generator=generator))  # matched pairs
    scale, bias = torch.tensor(math.log(50)), torch.tensor(-5.0)
    plain = contrastive_loss(loss, images, texts, torch.eye(6), scale, bias)

    def with_negatives(negatives):
        return contrastive_loss(loss, images, texts, torch.eye(6), scale, bias, negatives)

    assert with_negatives(texts[:0]) == plain
    far = -unit(images.mean(0, keepdim=True))  # every preview's cosine to it is < 0
    assert (images @ far.T).max() < 0
    assert with_negatives(far) == pytest.approx(plain.item(), abs=1e-3)
    # Each preview's own caption again, as a negative: softmax must now share each row's
    # mass with a copy (about log 2 more on the preview -> caption half); sigmoid calls
    # a near-certain match wrong six times.
    assert with_negatives(texts) > plain + (0.3 if loss == "softmax" else 10)


def test_bank_negatives_need_a_locked_text_tower(small_demo, lit_model, tiny_model_path,
                                                 tmp_path):
    with pytest.raises(VoClipError, match="locked text tower"):
        train(tiny_model(), small_demo, replace(QUICK, bank_negatives=True), progress=False)
    with pytest.raises(VoClipError, match="cached text features"):  # locked, but no HF trunk
        train(tiny_model(), small_demo, replace(QUICK, bank_negatives=True, lock_text=True),
              progress=False)
    result = run_cli("train", "--archive", str(small_demo.root), "--model",
                     str(tiny_model_path), "--out", str(tmp_path / "m.safetensors"),
                     "--bank-negatives", home=tmp_path, check=False)
    assert_one_line_error(result, "bank negatives need a locked text tower")


def test_lit_with_bank_negatives_trains(small_demo, lit_model):
    model = lit_model()
    text_before = model.module.text.state_dict()
    text_before = {k: v.clone() for k, v in text_before.items()}
    result = train(model, small_demo, replace(LIT, bank_negatives=True), progress=False)
    assert all(np.isfinite(h["val_loss"]) for h in result.history)
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    for name, tensor in model.module.text.state_dict().items():
        assert torch.equal(tensor, text_before[name]), name


def test_a_resumed_run_gives_the_uninterrupted_curve(small_demo, tmp_path):
    settings = replace(QUICK, caption_variants=2, max_steps=20, eval_every=5)
    whole = tiny_model()
    reference = train(whole, small_demo, settings, run_dir=tmp_path / "whole", progress=False)

    def interrupt_at_step_12(step, loss):
        if step == 12:
            signal.raise_signal(signal.SIGINT)  # as Ctrl-C would: the step finishes first

    with pytest.raises(TrainingInterrupted, match="after step 12 of 20"):
        train(tiny_model(), small_demo, settings, run_dir=tmp_path / "cut",
              on_step=interrupt_at_step_12, progress=False)
    resumed_model = tiny_model()
    resumed = train(resumed_model, small_demo, settings, run_dir=tmp_path / "cut",
                    resume=True, progress=False)
    assert resumed.history == reference.history
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (
        tmp_path / "whole" / "metrics.jsonl").read_text()
    for name, tensor in whole.module.state_dict().items():
        assert torch.equal(resumed_model.module.state_dict()[name], tensor), name
    with pytest.raises(VoClipError, match="other settings"):
        train(tiny_model(), small_demo, replace(settings, lr=5e-4),
              run_dir=tmp_path / "cut", resume=True, progress=False)


def _cli_train(model, archive, out, *extra):
    return [sys.executable, "-m", "vo_clip", "train", "--archive", str(archive.root),
            "--model", str(model), "--out", str(out), "--max-steps", "40", "--batch-size", "16",
            "--lr", "1e-3", "--warmup-steps", "4", "--eval-every", "5", *extra]


@pytest.mark.slow
def test_cli_ctrl_c_then_resume_continues_the_same_run(small_demo, tiny_model_path, tmp_path):
    env_home = tmp_path / "home"
    straight = run_cli(*_cli_train(tiny_model_path, small_demo, tmp_path / "a.safetensors")[3:],
                       home=env_home)
    assert "best at step" in straight.stdout
    with Image.open(tmp_path / "a.run" / "training_curve.png") as curve:
        assert curve.format == "PNG" and curve.width >= 1500

    out = tmp_path / "b.safetensors"
    log = tmp_path / "b.run" / "metrics.jsonl"
    process = subprocess.Popen(_cli_train(tiny_model_path, small_demo, out),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**_env(env_home)})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "training interrupted after step" in stderr and "--resume" in stderr
    assert not out.exists()

    again = run_cli(*_cli_train(tiny_model_path, small_demo, out)[3:], home=env_home,
                    check=False)
    assert_one_line_error(again, "holds an earlier run")
    other = run_cli(*_cli_train(tiny_model_path, small_demo, out, "--lr", "2e-3",
                                "--resume")[3:], home=env_home, check=False)
    assert_one_line_error(other, "other settings", "lr")
    run_cli(*_cli_train(tiny_model_path, small_demo, out, "--resume")[3:], home=env_home)

    assert log.read_text() == (tmp_path / "a.run" / "metrics.jsonl").read_text()
    card = load_model(str(out), device="cpu").card
    reference = load_model(str(tmp_path / "a.safetensors"), device="cpu").card
    assert card.fingerprint == reference.fingerprint
    assert card.training_data["history"] == reference.training_data["history"]


def _env(home):
    env = {**os.environ, "VO_CLIP_HOME": str(home)}
    env.pop("VO_CLIP_CONFIG", None)
    return env


def _artifacts() -> Path:
    """Where the training curve is kept after the run (CI uploads ``test-artifacts/``)."""
    root = Path(os.environ.get("VO_CLIP_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    path = root / "train"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: A small CLIP: ViT image tower and CLIP text transformer, trained from scratch here.
SMALL_ARCHITECTURE = {
    "embed_dim": 64, "quick_gelu": False,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 96, "layers": 3,
                   "head_width": 32},
    "text_cfg": {"context_length": 48, "vocab_size": 49408, "width": 96, "heads": 3,
                 "layers": 3},
}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_small_clip_learns_the_demo_archive(demo_first_run, tmp_path):
    """A few hundred steps: validation loss falls, retrieval beats untrained and shuffled."""
    from vo_clip.archive import Archive
    from vo_clip.ml.evaluate import retrieval_accuracy
    from vo_clip.ml.pairs import archive_pairs

    home, _ = demo_first_run
    archive = Archive.open(home / "demo-archive")
    model = create_model(SMALL_ARCHITECTURE, seed=0, name="small", device="cpu")
    settings = replace(PAPERCLIP_RECIPE, max_steps=300, lr=2e-3, warmup_steps=30,
                       eval_every=50, caption_variants=2)
    result = train(model, archive, settings, run_dir=tmp_path / "run", progress=False)
    start, best = result.history[0], max(result.history, key=lambda h: h["val_top10"])
    artifacts = _artifacts()
    (artifacts / "small_clip_history.json").write_text(json.dumps(result.history, indent=1))
    write_training_curve(TrainingRun(tmp_path / "run").read_log(),
                         artifacts / "small_clip_training_curve.png", best_step=result.best_step)
    assert start["step"] == 0 and result.history[-1]["step"] == 300
    assert min(h["val_loss"] for h in result.history[1:]) < start["val_loss"] - 0.2
    assert best["val_top10"] > start["val_top10"] + 0.15

    pairs = archive_pairs(archive)
    held = pairs.subset(np.isin(pairs.proposals, result.validation_proposals))
    images = model.encode_images(held.paths)
    texts = model.encode_text(held.captions)
    shuffled = np.random.default_rng(0).permutation(len(held))
    trained = retrieval_accuracy(texts, images, [10])[10]
    baseline = retrieval_accuracy(texts[shuffled], images, [10])[10]
    assert trained == pytest.approx(best["val_top10"], abs=0.02)
    assert trained > baseline + 0.15 and abs(baseline - 0.10) < 0.05
