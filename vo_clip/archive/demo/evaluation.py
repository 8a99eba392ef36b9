"""The demo archive's evaluation queries, with the scene kinds that answer them.

The first ten are the queries of PAPERCLIP's evaluation (its figure of top-k image
retrieval); a query answered by more than one kind lists each (cluster lensing *is*
strong lensing and is *about* dark matter). The paraphrases are
:data:`~.captions.HELD_OUT_PARAPHRASES`: their content words never reach a caption, so
finding the right kind with them needs a text tower that understands language.
"""

from __future__ import annotations

from .captions import HELD_OUT_PARAPHRASES

__all__ = ["PAPERCLIP_QUERIES", "PARAPHRASE_QUERIES"]

PAPERCLIP_QUERIES: dict[str, set[str]] = {
    "globular cluster": {"globular_cluster"},
    "dwarf galaxy": {"dwarf_galaxy"},
    "SN 1987A": {"supernova_remnant_ring"},
    "strong lensing": {"strong_lensing", "dark_matter_cluster_lensing"},
    "galaxy clusters": {"galaxy_cluster", "dark_matter_cluster_lensing"},
    "interstellar medium": {"interstellar_medium"},
    "dark matter": {"dark_matter_cluster_lensing"},
    "spiral galaxies": {"spiral_galaxy"},
    "Lyman-alpha emitters": {"lyman_alpha_high_z"},
    "comets": {"comet"},
}

PARAPHRASE_QUERIES: dict[str, set[str]] = {
    text: {kind} for kind, texts in HELD_OUT_PARAPHRASES.items() for text in texts
}
