"""The model layer: the CLIP model, its training and evaluation; it imports torch and open_clip.

The rest of vo_clip reaches CLIP only through this package. torch has one other
importer: the local language model that writes abstract summaries
(:class:`vo_clip.archive.summarize.TransformersBackend`) is a transformers model, so it
imports torch itself, inside its methods, and importing :mod:`vo_clip.archive` still
loads no torch.
"""
