"""One renderer per scene kind: ``SCENES[kind](canvas, look) -> Scene``.

Calibration frames have no scene: they show the detector itself and are rendered by
:mod:`..calibration`.
"""

from __future__ import annotations

from .base import Look, Scene
from .cosmology import (
                        dark_matter_cluster_lensing,
                        deep_field,
                        galaxy_cluster,
                        lyman_alpha_high_z,
                        strong_lensing,
)
from .galactic import (
                        dwarf_galaxy,
                        edge_on_galaxy,
                        elliptical_galaxy,
                        merging_galaxies,
                        spiral_galaxy,
)
from .nebulae import interstellar_medium, planetary_nebula, supernova_remnant_ring
from .solar_system import comet, giant_planet
from .stellar import globular_cluster, protoplanetary_disk, star_forming_region

__all__ = ["SCENES", "Look", "Scene"]

SCENES = {
    "globular_cluster": globular_cluster,
    "dwarf_galaxy": dwarf_galaxy,
    "supernova_remnant_ring": supernova_remnant_ring,
    "strong_lensing": strong_lensing,
    "galaxy_cluster": galaxy_cluster,
    "interstellar_medium": interstellar_medium,
    "dark_matter_cluster_lensing": dark_matter_cluster_lensing,
    "spiral_galaxy": spiral_galaxy,
    "lyman_alpha_high_z": lyman_alpha_high_z,
    "comet": comet,
    "elliptical_galaxy": elliptical_galaxy,
    "edge_on_galaxy": edge_on_galaxy,
    "planetary_nebula": planetary_nebula,
    "giant_planet": giant_planet,
    "star_forming_region": star_forming_region,
    "protoplanetary_disk": protoplanetary_disk,
    "merging_galaxies": merging_galaxies,
    "deep_field": deep_field,
}
