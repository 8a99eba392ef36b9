"""Proposal text: titles, investigators, abstracts and PAPERCLIP-style summaries.

PAPERCLIP trains on what a proposal says it will observe, summarised by a language model
into objects and phenomena and science use cases. The demo writes both from the
per-kind vocabulary in :mod:`.phrases`, drawn at random per proposal and mixed with
sentences any proposal could contain (strategy, analysis, legacy), so that captions of
one kind share meaning but rarely wording. No real abstract is copied.

``HELD_OUT_PARAPHRASES`` are plain-language queries whose content words appear in no
caption; the retrieval evaluation uses them to check that the model generalises beyond
the words it was trained on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .phrases import WORDS

__all__ = [
    "HELD_OUT_PARAPHRASES",
    "Caption",
    "caption_vocabulary",
    "content_words",
    "write_caption",
]

HELD_OUT_PARAPHRASES: dict[str, list[str]] = {
    "globular_cluster": ["beehive of ancient suns", "a swarm of elderly suns",
                         "ancient suns huddled in a heap"],
    "dwarf_galaxy": ["pocket-sized island universe", "puny runt island universe",
                     "miniature starry smudge"],
    "supernova_remnant_ring": ["cosmic fireworks", "pearl necklace after an explosion",
                               "fireworks aftermath"],
    "strong_lensing": ["cosmic mirage", "funhouse mirror in the sky",
                       "mirage of a faraway island universe"],
    "galaxy_cluster": ["cosmic metropolis", "island universes crowded into a metropolis",
                       "megacity of island universes"],
    "interstellar_medium": ["cosmic smoke and soot", "wispy soot between the suns", "smoky haze"],
    "dark_matter_cluster_lensing": ["invisible scaffolding", "ghostly unseen skeleton",
                                    "invisible skeleton holding everything together"],
    "spiral_galaxy": ["cosmic pinwheel", "celestial whirlpool", "pinwheel-shaped whirlpool"],
    "lyman_alpha_high_z": ["embryonic specks at the dawn of time", "toddler island universes",
                           "dawn of time specks"],
    "comet": ["dirty snowball", "icy wanderer", "fuzzy visitor from the outskirts"],
    "elliptical_galaxy": ["featureless cosmic egg", "egg-shaped island universe",
                          "rugby-ball island universe"],
    "edge_on_galaxy": ["cosmic needle", "flying saucer seen sideways", "sideways cosmic needle"],
    "planetary_nebula": ["cosmic eyeball", "last gasp of a dying sun", "gaseous soap bubble"],
    "giant_planet": ["Saturn-like world", "Jovian weather", "ringed behemoth"],
    "star_forming_region": ["cosmic nursery", "cradle of newborn suns", "towers of creation"],
    "protoplanetary_disk": ["cosmic hamburger", "hamburger-shaped cocoon", "swaddled infant sun"],
    "merging_galaxies": ["cosmic car crash", "island universes smashing together",
                         "celestial smashup"],
    "deep_field": ["peering into the abyss", "bottomless pit of faraway smudges",
                   "tapestry of countless faraway smudges"],
    "calibration_frame": ["blank test shot", "empty picture used to tune the camera",
                          "housekeeping snapshot of nothing"],
}

_STOPWORDS = frozenset(
    "a an the of in into at to for from with by and or on its it is be like used after "
    "between seen that this near out up over under".split())

_STRATEGY = (
    "We will obtain {instrument} imaging in {filters}, dithering to improve the sampling "
    "and reject detector artefacts.",
    "The observations use {instrument} through {filters}, chosen to balance sensitivity "
    "against resolution.",
    "Each visit combines several exposures with {instrument} in {filters}.",
    "We request {orbits} orbits of {instrument} imaging through {filters}.",
    "Photometry in {filters} will separate the components of interest.",
    "A small dither pattern fills the gaps between the detectors and improves the sampling.",
)
_ANALYSIS = (
    "The images will be compared with state-of-the-art numerical simulations.",
    "We will compare the measurements with theoretical models to discriminate between "
    "competing scenarios.",
    "The resolution of HST is essential, since ground-based data cannot separate the "
    "relevant structures.",
    "These data complement existing ground-based spectroscopy and imaging at other wavelengths.",
    "Our team has developed the analysis tools needed to exploit these data quickly.",
    "The results will be combined with archival observations from earlier cycles.",
)
_LEGACY = (
    "All data will be made public immediately, providing a lasting legacy for the community.",
    "High-level science products will be released through the archive.",
    "The programme will provide a reference dataset for future facilities.",
    "This dataset will remain valuable for a wide range of archival studies.",
)
_CALIBRATION_STRATEGY = (
    "Exposures are taken with {instrument} during Earth occultation, costing no science orbits.",
    "The programme repeats {instrument} internal exposures through {filters} at regular intervals.",
    "We request {orbits} orbits of {instrument} calibration exposures, mostly in parallel.",
    "Frames are read out through all amplifiers in the default modes used by observers.",
)
_CALIBRATION_ANALYSIS = (
    "New reference files will be delivered to the calibration pipeline.",
    "Trends will be compared with previous cycles to detect changes in detector behaviour.",
    "Results will be reported in instrument science reports.",
    "The monitoring is needed to keep the photometric calibration within requirements.",
)
_AIMS = (
    "We propose to use HST for {use}.",
    "The main goal of this programme is {use}.",
    "These observations will enable {use}.",
    "Our primary science driver is {use}, with {use2} as a secondary goal.",
    "We will focus on {use} and {use2}.",
)
_TITLES = ("{topic}", "{topic}: {Use}", "{topic} with {instrument}", "{topic} (Continuation)",
           "A Closer Look at {topic}")

_SURNAME_START = ("Ka", "Vel", "Mor", "Tan", "Ri", "Sol", "Bren", "Da", "Lo", "Fen", "Ar", "Is",
                  "Ko", "Mi", "Pa", "Quen", "Ro", "Sa", "Te", "Vo", "Yu", "Zan", "Ha", "Ne", "Or")
_SURNAME_MIDDLE = ("la", "ri", "no", "ve", "ta", "mi", "so", "ka", "", "", "")
_SURNAME_END = ("ndez", "rova", "kin", "sson", "ani", "berg", "mura", "tti", "wski", "lund",
                "ez", "ova", "ley", "ton", "ri", "nen")


@dataclass(frozen=True)
class Caption:
    """The text of one proposal."""

    title: str
    pi: str
    abstract: str
    objects: tuple[str, ...]
    use_cases: tuple[str, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return (self.title, self.abstract, *self.objects, *self.use_cases)


def write_caption(kind: str, rng, *, instrument: str, filters: list[str], orbits: int) -> Caption:
    """A proposal about ``kind``: title, invented PI, 4-8 sentence abstract and summary."""
    words = WORDS[kind]
    objects = _pick(rng, words.objects, _summary_length(rng))
    uses = _pick(rng, words.uses, _summary_length(rng))
    slots = {"instrument": instrument, "filters": _join(filters), "orbits": orbits}
    abstract = _abstract(rng, words, slots, uses, kind)
    title = _pick(rng, _TITLES, 1)[0].format(
        topic=_pick(rng, words.topics, 1)[0], Use=uses[0][0].upper() + uses[0][1:], **slots)
    return Caption(title=title, pi=_investigator(rng), abstract=abstract,
                   objects=tuple(objects), use_cases=tuple(uses))


def _abstract(rng, words, slots, uses, kind) -> str:
    strategy, analysis = ((_CALIBRATION_STRATEGY, _CALIBRATION_ANALYSIS)
                          if kind == "calibration_frame" else (_STRATEGY, _ANALYSIS))
    core = words.objects[:2]
    openings = _pick(rng, words.openings, int(rng.integers(1, 3)))
    sentences = [s.format(obj=_pick(rng, core, 1)[0]) for s in openings]
    extra_use = _pick(rng, words.uses, 1)[0]
    second_use = extra_use if extra_use != uses[0] else uses[-1]
    sentences.append(_pick(rng, _AIMS, 1)[0].format(use=uses[0], use2=second_use))
    sentences += [s.format(**slots) for s in _pick(rng, strategy, int(rng.integers(1, 3)))]
    tail = (_pick(rng, analysis, int(rng.integers(0, 3)))
            + _pick(rng, _LEGACY, int(rng.integers(0, 2))))
    sentences += tail[: 8 - len(sentences)]
    while len(sentences) < 4:
        sentences.append(_pick(rng, _LEGACY, 1)[0])
    return " ".join(sentences)


def _summary_length(rng) -> int:
    return int(rng.choice([1, 2, 3, 4, 5], p=[0.1, 0.25, 0.3, 0.2, 0.15]))


def _pick(rng, pool, count: int) -> list[str]:
    count = min(count, len(pool))
    return [pool[i] for i in rng.choice(len(pool), size=count, replace=False)]


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _investigator(rng) -> str:
    surname = (_pick(rng, _SURNAME_START, 1)[0] + _pick(rng, _SURNAME_MIDDLE, 1)[0]
               + _pick(rng, _SURNAME_END, 1)[0])
    return f"{surname}, {chr(ord('A') + int(rng.integers(0, 26)))}."


def content_words(text: str) -> set[str]:
    """Lower-case words of ``text`` without stopwords, plural 's' removed."""
    words = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _STOPWORDS or len(word) < 3:
            continue
        plural = word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3
        words.add(word[:-1] if plural else word)
    return words


def caption_vocabulary() -> set[str]:
    """Every content word any generated caption could contain."""
    pools = [_STRATEGY, _ANALYSIS, _CALIBRATION_STRATEGY, _CALIBRATION_ANALYSIS, _LEGACY,
             _AIMS, _TITLES]
    for words in WORDS.values():
        pools += [words.objects, words.uses, words.topics, words.openings]
    vocabulary = set()
    for pool in pools:
        for text in pool:
            vocabulary |= content_words(re.sub(r"\{\w+\}", " ", text))
    return vocabulary
