"""A deterministic, HST-like demo archive: the project's embedded default.

Real Hubble previews cannot be downloaded everywhere, so the service and the tests use
a seeded synthetic archive that imitates one: HST proposals with titles, abstracts and
PAPERCLIP-style summaries, ObsCore rows with plausible instruments, filters, footprints
and dates, and previews that carry the telescope's look (PSF and spikes, noise, cosmic
rays, chip gaps, rotated footprints). ``truth.csv`` records each observation's scene
kind for evaluation; nothing else should read it.
"""

from .captions import HELD_OUT_PARAPHRASES
from .contact_sheet import write_contact_sheet
from .generator import TRUTH_FILE, build_demo_archive, remove_abandoned_builds
from .kinds import KINDS

__all__ = ["HELD_OUT_PARAPHRASES", "KINDS", "TRUTH_FILE", "build_demo_archive",
           "remove_abandoned_builds", "write_contact_sheet"]
