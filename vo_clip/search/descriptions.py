"""The curated descriptions an observation is ranked against (PAPERCLIP's description retrieval).

PAPERCLIP (arXiv 2403.08851) shows that a CLIP model fine-tuned on HST previews and
proposal summaries can go the other way round from search: given an image, rank a fixed
list of astrophysical object classes and science use cases by similarity and read off
what the observation most likely shows and what it could be used for. This module is
that list, written for vo_clip.

Each entry's ``text`` is what the text tower embeds. The phrasing follows the register of
PAPERCLIP-style summaries (short noun phrases an astronomer would list as "objects and
phenomena" or "science use cases"), because that is what the models are trained on;
long sentences dilute the one or two words a text tower keys on. Where several wordings
of an entry were plausible, the one the demo model ranked best on the demo archive's
*training* proposals was kept; the held-out proposals were only measured. The list
covers every scene kind of the demo archive and goes beyond it (open clusters, quasar
hosts, moons, asteroids, transients...), so that it stays useful on real archives.

``DEMO_KIND_LABELS`` says which labels count as a correct description of each demo
scene kind. It serves evaluation and tests only; a kind accepts the entries that name
what its previews show, and — as the demo's query evaluation does — cluster lensing
accepts both galaxy-cluster and strong-lensing entries.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEMO_KIND_LABELS", "DESCRIPTIONS", "ENTRY_KINDS", "Description"]

#: The two kinds of entry, as PAPERCLIP's summaries split them.
ENTRY_KINDS = ("object", "use case")


@dataclass(frozen=True)
class Description:
    """One entry of the list.

    Parameters
    ----------
    label : str
        A short unique name shown to users.
    kind : {"object", "use case"}
        An astrophysical object class or phenomenon, or a science use case.
    text : str
        The phrase the text tower embeds.
    """

    label: str
    kind: str
    text: str


def _objects(*pairs: tuple[str, str]) -> tuple[Description, ...]:
    return tuple(Description(label, "object", text) for label, text in pairs)


def _uses(*pairs: tuple[str, str]) -> tuple[Description, ...]:
    return tuple(Description(label, "use case", text) for label, text in pairs)


_GALAXIES = _objects(
    ("spiral galaxy", "nearby spiral galaxy with spiral arms"),
    ("barred spiral galaxy", "barred spiral galaxy with a central bar"),
    ("elliptical galaxy", "nearby elliptical galaxies"),
    ("lenticular galaxy", "lenticular S0 galaxy with a bright bulge"),
    ("edge-on disk galaxy", "edge-on disc galaxy seen from the side"),
    ("dust lanes", "dark dust lane crossing a galaxy"),
    ("interacting galaxies", "interacting galaxies with tidal tails"),
    ("galaxy merger", "colliding galaxies with tidal features"),
    ("ring galaxy", "collisional ring galaxy"),
    ("starburst galaxy", "starburst galaxy with super star clusters"),
    ("dwarf galaxy", "faint dwarf galaxy resolved into stars"),
    ("star-forming clumps", "clumpy star-forming galaxy"),
    ("galactic nucleus", "bright galactic nucleus hosting a supermassive black hole"),
    ("AGN jet", "optical jet from an active galactic nucleus"),
    ("quasar host galaxy", "quasar and its host galaxy"),
    ("jellyfish galaxy", "jellyfish galaxy stripped by ram pressure"),
    ("Cepheids in a nearby galaxy", "Cepheid variable stars in a nearby galaxy"),
)

_LARGE_SCALE = _objects(
    ("galaxy cluster", "rich galaxy clusters"),
    ("brightest cluster galaxy", "giant brightest cluster galaxy with intracluster light"),
    ("cluster with lensing arcs", "massive galaxy cluster with giant lensed arcs"),
    ("dark matter in clusters", "dark matter in a massive cluster traced by lensing"),
    ("strong gravitational lens", "gravitational lens galaxy with lensed arcs"),
    ("lensed quasar", "multiply imaged lensed quasar"),
    ("deep field", "deep fields"),
    ("high-redshift galaxies", "Lyman-alpha emitters at high redshift"),
    ("protocluster", "protocluster of young galaxies in the early universe"),
)

_STARS = _objects(
    ("globular cluster", "globular cluster of old stars"),
    ("open cluster", "loose open cluster of young stars"),
    ("young massive cluster", "young massive star cluster"),
    ("crowded star field", "crowded field of resolved stars"),
    ("white dwarfs", "faint white dwarf stars"),
    ("binary stars", "close binary star system"),
    ("massive star nebula", "nebula around a massive evolved star"),
)

_NEBULAE = _objects(
    ("planetary nebula", "planetary nebula with a central star"),
    ("bipolar nebula", "bipolar hourglass nebula"),
    ("supernova remnant", "young supernova remnants"),
    ("supernova ring", "SN 1987A circumstellar ring with hot spots"),
    ("HII region", "glowing HII region of ionized gas"),
    ("star-forming region", "young massive stars lighting up a gas cloud"),
    ("dark cloud", "dark molecular cloud blocking starlight"),
    ("interstellar medium", "interstellar gas clouds"),
    ("reflection nebula", "reflection nebula of dust lit by a star"),
    ("light echo", "light echo in interstellar dust"),
)

_YOUNG_STARS = _objects(
    ("protoplanetary disk", "young star with a planet-forming disk"),
    ("debris disk", "debris disk around a nearby star"),
    ("Herbig-Haro jet", "Herbig-Haro jets"),
)

_SOLAR_SYSTEM = _objects(
    ("comet", "comet with a coma and dust tail"),
    ("asteroid", "asteroid or small solar system body"),
    ("giant planet", "the planet Jupiter"),
    ("ringed planet", "giant planet with rings"),
    ("ice giant", "ice giant planet Uranus or Neptune"),
    ("planetary moon", "moon of a giant planet"),
    ("planetary aurora", "aurora on a giant planet"),
)

_DETECTOR = _objects(
    ("calibration frame", "dark frame of the detector with hot pixels"),
    ("flat field", "internal flat field calibration exposure"),
)

_USE_CASES = _uses(
    ("star formation rates", "measuring star formation rates"),
    ("weak lensing shear", "weak lensing shear measurements"),
    ("dark matter mapping", "mapping the dark matter distribution"),
    ("lens modelling", "strong lensing mass models"),
    ("colour-magnitude diagrams", "stellar populations from colour-magnitude diagrams"),
    ("stellar ages", "age dating of old stellar populations"),
    ("photometric calibration", "photometric calibration of the detector"),
    ("detector monitoring", "monitoring dark current and hot pixels"),
    ("astrometry", "astrometry and proper motions"),
    ("transient search", "searching for transients and variable sources"),
    ("distance ladder", "Cepheid distances and the Hubble constant"),
    ("galaxy evolution", "galaxy evolution across cosmic time"),
    ("photometric redshifts", "photometric redshifts of faint galaxies"),
    ("cosmic reionization", "galaxies in the epoch of reionization"),
    ("black hole masses", "measuring supermassive black hole masses"),
    ("galaxy morphology", "galaxy morphology and structure"),
    ("merger-driven evolution", "merger-triggered star formation"),
    ("cluster galaxy evolution", "evolution of galaxies in dense clusters"),
    ("stellar feedback", "feedback from massive stars"),
    ("dust extinction", "dust extinction mapping"),
    ("shock physics", "physics of supernova shocks"),
    ("late stellar evolution", "mass loss at the end of a star's life"),
    ("planet formation", "planet formation in circumstellar disks"),
    ("planetary atmospheres", "atmospheric dynamics of giant planets"),
    ("cometary activity", "monitoring cometary outgassing activity"),
    ("disk structure", "structure of galactic discs"),
)

#: Every entry, objects first, in a fixed order.
DESCRIPTIONS: tuple[Description, ...] = (
    _GALAXIES + _LARGE_SCALE + _STARS + _NEBULAE + _YOUNG_STARS + _SOLAR_SYSTEM + _DETECTOR
    + _USE_CASES
)

#: For each demo scene kind, the labels that describe it correctly (evaluation only).
DEMO_KIND_LABELS: dict[str, tuple[str, ...]] = {
    "globular_cluster": ("globular cluster",),
    "dwarf_galaxy": ("dwarf galaxy",),
    "supernova_remnant_ring": ("supernova remnant", "supernova ring"),
    "strong_lensing": ("strong gravitational lens", "lensed quasar"),
    "galaxy_cluster": ("galaxy cluster", "brightest cluster galaxy"),
    "interstellar_medium": ("interstellar medium", "dark cloud", "reflection nebula",
                            "light echo", "HII region"),
    "dark_matter_cluster_lensing": ("cluster with lensing arcs", "dark matter in clusters",
                                    "galaxy cluster", "strong gravitational lens"),
    "spiral_galaxy": ("spiral galaxy", "barred spiral galaxy"),
    "lyman_alpha_high_z": ("high-redshift galaxies", "protocluster"),
    "comet": ("comet",),
    "elliptical_galaxy": ("elliptical galaxy", "lenticular galaxy"),
    "edge_on_galaxy": ("edge-on disk galaxy", "dust lanes"),
    "planetary_nebula": ("planetary nebula", "bipolar nebula"),
    "giant_planet": ("giant planet", "ringed planet", "ice giant", "planetary aurora"),
    "star_forming_region": ("star-forming region", "HII region"),
    "protoplanetary_disk": ("protoplanetary disk", "Herbig-Haro jet"),
    "merging_galaxies": ("interacting galaxies", "galaxy merger", "ring galaxy"),
    "deep_field": ("deep field",),
    "calibration_frame": ("calibration frame", "flat field"),
}
