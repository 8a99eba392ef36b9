"""The HST cameras the demo archive pretends to have used.

Every number here shapes something a user sees: the pixel scale and detector size set
the footprint (``s_region``, ``s_fov``, ``s_xel1``/``s_xel2``) and how much sky a preview
covers; the filter bounds are ``em_min``/``em_max``; the detector family decides whether
a preview shows cosmic rays, read noise, bleeding columns, a chip gap or IR blobs; the
active cycles keep a 1992 proposal from using a camera installed in 2009. Values are
rounded from the instrument handbooks, which is all a demo needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import hypot

__all__ = ["DETECTORS", "Detector", "Filter", "active_detectors", "detector"]

_ARCSEC_PER_RADIAN = 206264.806
_MIRROR_DIAMETER_M = 2.4


@dataclass(frozen=True)
class Filter:
    """A filter and its band pass (nanometres, as the handbooks list them)."""

    name: str
    lo_nm: float
    hi_nm: float

    @property
    def em_min(self) -> float:
        """Shortest wavelength, metres (ObsCore ``em_min``)."""
        return self.lo_nm * 1e-9

    @property
    def em_max(self) -> float:
        """Longest wavelength, metres (ObsCore ``em_max``)."""
        return self.hi_nm * 1e-9

    @property
    def pivot_nm(self) -> float:
        return 0.5 * (self.lo_nm + self.hi_nm)

    @property
    def narrow(self) -> bool:
        """Narrow bands isolate emission lines: nebulae shine, stars fade."""
        return (self.hi_nm - self.lo_nm) / self.pivot_nm < 0.05


@dataclass(frozen=True)
class Detector:
    """One camera/detector pair as ObsCore ``instrument_name`` spells it.

    ``family`` decides the detector's blemishes: ``ccd`` (cosmic rays, read noise,
    bleeding, hot pixels), ``mama`` and ``foc`` (photon counting: no read noise, no
    cosmic rays), ``ir`` (HgCdTe or NICMOS arrays read up the ramp: no cosmic rays, but
    blobs and dead regions). ``layout`` names the footprint: ``single``, ``two_chip``
    (two CCDs with a gap), ``wfpc2`` (the stair-step of three WF chips and the PC) or
    ``quad`` (four equal chips).
    """

    name: str
    code: str
    letter: str
    family: str
    layout: str
    scale: float
    npix: tuple[int, int]
    filters: tuple[Filter, ...]
    cycles: tuple[tuple[int, int], ...]
    read_noise: float = 4.0
    full_well: float = 80000.0
    gap_arcsec: float = 0.0
    aberrated: bool = False

    @property
    def size_arcsec(self) -> tuple[float, float]:
        return self.npix[0] * self.scale, self.npix[1] * self.scale

    def active_in(self, cycle: int) -> bool:
        return any(lo <= cycle <= hi for lo, hi in self.cycles)

    def fwhm_arcsec(self, flt: Filter) -> float:
        """PSF core FWHM: the diffraction limit of the 2.4 m mirror, blurred by pixels."""
        diffraction = 1.03 * flt.pivot_nm * 1e-9 / _MIRROR_DIAMETER_M * _ARCSEC_PER_RADIAN
        core = hypot(diffraction, 0.8 * self.scale)
        return core * (1.6 if self.aberrated else 1.0)

    def filter(self, name: str) -> Filter:
        for flt in self.filters:
            if flt.name == name:
                return flt
        raise KeyError(f"{self.name} has no filter {name}")


def _filters(*spec: tuple[str, float, float]) -> tuple[Filter, ...]:
    return tuple(Filter(*row) for row in spec)


_WFPC2_FILTERS = _filters(
    ("F300W", 250, 360), ("F336W", 300, 375), ("F439W", 390, 480), ("F450W", 380, 530),
    ("F555W", 450, 650), ("F606W", 480, 720), ("F675W", 600, 750), ("F702W", 590, 820),
    ("F814W", 700, 960), ("F502N", 499, 505), ("F656N", 655, 658), ("F658N", 656, 661),
    ("F673N", 670, 677), ("F953N", 950, 957),
)

DETECTORS: tuple[Detector, ...] = (
    Detector("WFPC/WF", "wfpc_wf", "w", "ccd", "quad", 0.1, (1600, 1600),
             _filters(("F336W", 300, 375), ("F439W", 390, 480), ("F555W", 450, 650),
                      ("F702W", 590, 820), ("F785LP", 760, 1000), ("F656N", 655, 658)),
             ((1, 3),), read_noise=13.0, full_well=40000.0, aberrated=True),
    Detector("FOC/96", "foc_96", "x", "foc", "single", 0.014, (512, 512),
             _filters(("F140W", 120, 180), ("F220W", 190, 260), ("F275W", 230, 310),
                      ("F342W", 310, 380), ("F430W", 390, 470), ("F480LP", 480, 600),
                      ("F501N", 500, 502)),
             ((1, 8),), read_noise=0.0, aberrated=False),
    Detector("WFPC2", "wfpc2_wf", "u", "ccd", "wfpc2", 0.0996, (1600, 1600), _WFPC2_FILTERS,
             ((4, 18),), read_noise=5.0, full_well=53000.0),
    Detector("NICMOS/NIC2", "nicmos_nic2", "n", "ir", "single", 0.075, (256, 256),
             _filters(("F110W", 800, 1400), ("F160W", 1400, 1800), ("F187N", 1868, 1882),
                      ("F190N", 1890, 1910), ("F205W", 1750, 2350), ("F222M", 2150, 2300)),
             ((7, 8), (12, 17)), read_noise=30.0, full_well=200000.0),
    Detector("NICMOS/NIC3", "nicmos_nic3", "n", "ir", "single", 0.2, (256, 256),
             _filters(("F110W", 800, 1400), ("F160W", 1400, 1800), ("F187N", 1868, 1882),
                      ("F190N", 1890, 1910), ("F222M", 2150, 2300)),
             ((7, 8), (12, 17)), read_noise=30.0, full_well=200000.0),
    Detector("STIS/CCD", "stis_ccd", "o", "ccd", "single", 0.0508, (1024, 1024),
             _filters(("50CCD", 200, 1030), ("F28X50LP", 550, 1030), ("F28X50OII", 371, 375)),
             ((7, 14), (19, 32)), read_noise=5.4, full_well=120000.0),
    Detector("STIS/NUV-MAMA", "stis_nuv", "o", "mama", "single", 0.0246, (1024, 1024),
             _filters(("25MAMA", 160, 320), ("F25SRF2", 170, 320), ("F25QTZ", 146, 320),
                      ("F25MGII", 278, 282)),
             ((7, 14), (19, 32)), read_noise=0.0),
    Detector("STIS/FUV-MAMA", "stis_fuv", "o", "mama", "single", 0.0246, (1024, 1024),
             _filters(("25MAMA", 115, 170), ("F25SRF2", 128, 170), ("F25LYA", 119, 124)),
             ((7, 14), (19, 32)), read_noise=0.0),
    Detector("ACS/WFC", "acs_wfc", "j", "ccd", "two_chip", 0.05, (4096, 4096),
             _filters(("F435W", 360, 486), ("F475W", 396, 557), ("F555W", 458, 621),
                      ("F606W", 470, 718), ("F625W", 545, 709), ("F775W", 684, 863),
                      ("F814W", 696, 962), ("F850LP", 828, 1086), ("F550M", 532, 578),
                      ("F502N", 499, 505), ("F658N", 656, 661), ("F660N", 659, 662)),
             ((12, 16), (19, 32)), read_noise=4.2, full_well=84000.0, gap_arcsec=2.5),
    Detector("ACS/HRC", "acs_hrc", "j", "ccd", "single", 0.027, (1024, 1024),
             _filters(("F220W", 180, 266), ("F250W", 200, 320), ("F330W", 290, 370),
                      ("F435W", 360, 486), ("F606W", 470, 718), ("F814W", 696, 962),
                      ("F658N", 656, 661)),
             ((12, 16),), read_noise=4.7, full_well=155000.0),
    Detector("ACS/SBC", "acs_sbc", "j", "mama", "single", 0.032, (1024, 1024),
             _filters(("F115LP", 115, 180), ("F122M", 118, 134), ("F140LP", 136, 180),
                      ("F165LP", 160, 180)),
             ((12, 32),), read_noise=0.0),
    Detector("WFC3/UVIS", "wfc3_uvis", "i", "ccd", "two_chip", 0.0395, (4096, 4096),
             _filters(("F225W", 199, 266), ("F275W", 237, 310), ("F336W", 316, 363),
                      ("F390W", 330, 447), ("F438W", 410, 466), ("F475W", 394, 556),
                      ("F555W", 458, 621), ("F606W", 473, 718), ("F814W", 697, 958),
                      ("F200LP", 200, 1000), ("F373N", 372, 374), ("F487N", 486, 488),
                      ("F502N", 499, 505), ("F656N", 655, 658), ("F657N", 654, 661),
                      ("F673N", 670, 677)),
             ((18, 32),), read_noise=3.1, full_well=63000.0, gap_arcsec=1.2),
    Detector("WFC3/IR", "wfc3_ir", "i", "ir", "single", 0.128, (1014, 1014),
             _filters(("F098M", 906, 1049), ("F105W", 895, 1213), ("F110W", 883, 1412),
                      ("F125W", 1098, 1414), ("F140W", 1187, 1611), ("F160W", 1386, 1682),
                      ("F127M", 1245, 1302), ("F139M", 1367, 1416), ("F153M", 1501, 1562),
                      ("F126N", 1256, 1271), ("F128N", 1279, 1292), ("F130N", 1297, 1310),
                      ("F164N", 1636, 1653)),
             ((18, 32),), read_noise=12.0, full_well=78000.0),
)

_BY_NAME = {det.name: det for det in DETECTORS}


def detector(name: str) -> Detector:
    """The detector called ``name`` (an ``instrument_name`` value)."""
    return _BY_NAME[name]


def active_detectors(cycle: int) -> tuple[Detector, ...]:
    """Detectors a proposal of ``cycle`` could have used."""
    return tuple(det for det in DETECTORS if det.active_in(cycle))
