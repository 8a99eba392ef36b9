"""The scene kinds and what a proposal about each one looks like in the archive.

A kind fixes more than the picture: which cameras and filters its proposals choose,
how long they expose, where on the sky such targets lie, what the targets are called,
and which other kinds turn up as secondary observations in the same programme (a
globular-cluster programme takes parallel deep fields, a cluster-lensing one images
single lens galaxies). The generator reads these profiles; the renderers do not.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "KindProfile", "PROFILES"]


@dataclass(frozen=True)
class KindProfile:
    """How proposals of one kind use HST.

    ``sky`` is one of ``galactic`` (low galactic latitude), ``extragalactic`` (high
    latitude), ``magellanic`` (the Clouds), ``ecliptic`` (moving solar-system targets)
    or ``anywhere``. ``detectors`` weights instrument names; ``narrow`` is the chance
    that a filter is a narrow emission-line band. ``exptime`` is the log-uniform range
    of a product's total exposure in seconds.
    """

    code: str
    sky: str
    detectors: dict[str, float]
    exptime: tuple[float, float]
    narrow: float = 0.0
    companions: tuple[str, ...] = ()
    famous_fields: float = 0.0


_WIDE = {"WFPC/WF": 1, "WFPC2": 3, "ACS/WFC": 4, "WFC3/UVIS": 3, "WFC3/IR": 1.5}
_SHARP = {"FOC/96": 1, "ACS/HRC": 2, "STIS/CCD": 1, "WFPC2": 2, "WFC3/UVIS": 2, "NICMOS/NIC2": 1}
_INFRARED = {"NICMOS/NIC3": 1, "NICMOS/NIC2": 0.5, "WFC3/IR": 4, "ACS/WFC": 2, "WFPC2": 0.5}

PROFILES: dict[str, KindProfile] = {
    "globular_cluster": KindProfile(
        "GC", "galactic", {**_WIDE, "ACS/HRC": 0.5, "STIS/CCD": 0.5}, (200, 5000),
        companions=("deep_field", "dwarf_galaxy")),
    "dwarf_galaxy": KindProfile(
        "DW", "extragalactic", _WIDE, (800, 12000),
        companions=("deep_field", "globular_cluster")),
    "supernova_remnant_ring": KindProfile(
        "SNR", "magellanic", {**_WIDE, **_SHARP}, (300, 6000), narrow=0.45,
        companions=("star_forming_region", "interstellar_medium")),
    "strong_lensing": KindProfile(
        "LENS", "extragalactic", {"WFPC2": 2, "ACS/WFC": 4, "WFC3/UVIS": 2, "WFC3/IR": 3,
                                  "NICMOS/NIC2": 1}, (600, 9000),
        companions=("elliptical_galaxy", "galaxy_cluster"), famous_fields=0.2),
    "galaxy_cluster": KindProfile(
        "CL", "extragalactic", {**_WIDE, "WFC3/IR": 3}, (1000, 15000),
        companions=("elliptical_galaxy", "dark_matter_cluster_lensing", "deep_field"),
        famous_fields=0.2),
    "interstellar_medium": KindProfile(
        "ISM", "galactic", {**_WIDE, "WFC3/IR": 2, "NICMOS/NIC3": 1}, (300, 6000), narrow=0.5,
        companions=("star_forming_region",)),
    "dark_matter_cluster_lensing": KindProfile(
        "DM", "extragalactic", {"ACS/WFC": 5, "WFC3/IR": 3, "WFC3/UVIS": 1, "WFPC2": 2},
        (2000, 25000), companions=("galaxy_cluster", "strong_lensing", "deep_field"),
        famous_fields=0.35),
    "spiral_galaxy": KindProfile(
        "SP", "extragalactic", _WIDE, (400, 6000), narrow=0.1,
        companions=("edge_on_galaxy", "deep_field")),
    "lyman_alpha_high_z": KindProfile(
        "LAE", "extragalactic", {**_INFRARED, "STIS/CCD": 0.5}, (5000, 40000), narrow=0.35,
        companions=("deep_field",), famous_fields=0.5),
    "comet": KindProfile(
        "COMET", "ecliptic", {"WFPC2": 3, "ACS/WFC": 2, "WFC3/UVIS": 4, "STIS/CCD": 0.5,
                              "ACS/HRC": 0.5}, (20, 1500), narrow=0.1,
        companions=("deep_field",)),
    "elliptical_galaxy": KindProfile(
        "ELL", "extragalactic", {**_WIDE, "ACS/HRC": 1, "STIS/CCD": 0.5}, (300, 6000),
        companions=("galaxy_cluster", "globular_cluster")),
    "edge_on_galaxy": KindProfile(
        "EDGE", "extragalactic", {**_WIDE, "NICMOS/NIC3": 0.5}, (400, 6000),
        companions=("spiral_galaxy", "deep_field")),
    "planetary_nebula": KindProfile(
        "PN", "galactic", {"WFPC2": 4, "ACS/WFC": 2, "WFC3/UVIS": 3, "STIS/CCD": 1,
                           "ACS/HRC": 1, "FOC/96": 0.5, "WFPC/WF": 0.5}, (60, 3000),
        narrow=0.7, companions=("interstellar_medium",)),
    "giant_planet": KindProfile(
        "GP", "ecliptic", {"WFPC2": 4, "WFC3/UVIS": 4, "ACS/HRC": 1.5, "STIS/FUV-MAMA": 0.7,
                           "ACS/SBC": 0.5, "FOC/96": 0.5, "NICMOS/NIC2": 0.5}, (0.5, 120),
        narrow=0.15, companions=("comet",)),
    "star_forming_region": KindProfile(
        "SF", "galactic", {**_WIDE, "WFC3/IR": 2.5, "NICMOS/NIC3": 0.5}, (300, 6000),
        narrow=0.55, companions=("interstellar_medium", "protoplanetary_disk"),
        famous_fields=0.25),
    "protoplanetary_disk": KindProfile(
        "YSO", "galactic", {"WFPC2": 2, "ACS/HRC": 2, "STIS/CCD": 2, "NICMOS/NIC2": 2,
                            "WFC3/IR": 1, "WFC3/UVIS": 1, "ACS/WFC": 1}, (200, 5000),
        narrow=0.25, companions=("star_forming_region",), famous_fields=0.2),
    "merging_galaxies": KindProfile(
        "MRG", "extragalactic", {**_WIDE, "NICMOS/NIC3": 0.5}, (400, 8000), narrow=0.1,
        companions=("spiral_galaxy", "elliptical_galaxy")),
    "deep_field": KindProfile(
        "DF", "extragalactic", {"WFPC2": 2, "ACS/WFC": 5, "WFC3/IR": 4, "WFC3/UVIS": 2,
                                "NICMOS/NIC3": 1}, (3000, 60000),
        companions=("lyman_alpha_high_z",), famous_fields=0.5),
    "calibration_frame": KindProfile(
        "CAL", "anywhere", {"WFPC2": 2, "ACS/WFC": 3, "WFC3/UVIS": 3, "WFC3/IR": 2,
                            "ACS/HRC": 1, "STIS/CCD": 1, "NICMOS/NIC2": 1, "WFPC/WF": 0.5},
        (0.5, 1800)),
}

#: Every scene kind, in a fixed order (readable names, as in ``truth.csv``).
KINDS: tuple[str, ...] = tuple(PROFILES)
