"""The observing plan of the demo archive: proposals, visits and observations.

Planning is cheap and sequential (one random generator for the whole archive), while
rendering is expensive and parallel: each observation carries its own seed, spawned
from the archive seed and its index, so its preview never depends on how the work was
split between processes.

Proposals look like HST programmes: one dominant kind of target per proposal, a cycle
whose instruments existed, one or two detectors, a few filters, visits spread over the
cycle with new orientations, and observations that cluster on the proposal's field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .captions import Caption, write_caption
from .instruments import Detector, active_detectors, detector
from .kinds import KINDS, PROFILES
from .render import Exposure
from .sky import ecliptic_to_icrs, field_centre, offset
from .timeline import CYCLES, cycle_mjd_range

__all__ = ["Observation", "Proposal", "plan_archive"]

_ORBIT_VISIBLE_S = 2700.0  # usable seconds per 96-minute orbit
_ORBIT_S = 5760.0
_CALIBRATION_TARGETS = {"flat": "INTFLAT", "dark": "DARK", "bias": "BIAS"}


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    cycle: int
    kind: str
    caption: Caption


@dataclass(frozen=True)
class Observation:
    """One row of the archive and the recipe of its preview."""

    index: int
    obs_id: str
    proposal: Proposal
    kind: str
    exposure: Exposure
    target_name: str
    ra: float
    dec: float
    t_min: float
    t_max: float
    seed: tuple[int, ...]


def plan_archive(n_observations: int, n_proposals: int, seed: int) -> list[Observation]:
    """Every observation of a demo archive, in proposal and visit order."""
    rng = np.random.default_rng([seed, 0])
    n_proposals = max(1, min(n_proposals, n_observations))
    kinds = _proposal_kinds(rng, n_proposals)
    counts = _observation_counts(rng, n_observations, n_proposals)
    used_ids: set[int] = set()
    observations: list[Observation] = []
    for kind, count in zip(kinds, counts):
        observations += _plan_proposal(rng, kind, count, used_ids, seed, len(observations))
    return observations


def _proposal_kinds(rng, count: int) -> list[str]:
    """Every kind once (while there are enough proposals), then a weighted draw."""
    kinds = [KINDS[i] for i in rng.permutation(len(KINDS))][:count]
    weights = np.array([2.0 if k == "calibration_frame" else 1.0 for k in KINDS])
    extra = rng.choice(len(KINDS), size=count - len(kinds), p=weights / weights.sum())
    return kinds + [KINDS[i] for i in extra]


def _observation_counts(rng, n_observations: int, n_proposals: int) -> np.ndarray:
    """Some programmes take one image, large ones take dozens."""
    weights = rng.lognormal(0.0, 0.9, n_proposals)
    return 1 + rng.multinomial(n_observations - n_proposals, weights / weights.sum())


def _plan_proposal(rng, kind, count, used_ids, seed, first_index) -> list[Observation]:
    profile = PROFILES[kind]
    cycle = _cycle(rng, kind)
    combos = _instrument_setups(rng, kind, cycle)
    proposal_id = _proposal_id(rng, cycle, used_ids)
    pointing = _pointing(rng, profile)
    names = {k: _target_name(rng, k) for k in dict.fromkeys((kind, *profile.companions))}
    kinds = [kind] + [_observation_kind(rng, kind) for _ in range(count - 1)]
    exposures = [_exposure(rng, k, *combos[j % len(combos)], cycle) for j, k in enumerate(kinds)]
    orbits = max(1, math.ceil(sum(e.exptime for e in exposures) / _ORBIT_VISIBLE_S))
    caption = write_caption(kind, rng, instrument=combos[0][0].name,
                            filters=sorted({f for _, f in combos}), orbits=orbits)
    proposal = Proposal(proposal_id, cycle, kind, caption)
    observations = []
    for visit, members in _visits(len(exposures), len(combos)):
        planned = [(kinds[j], exposures[j]) for j in members]
        observations += _plan_visit(rng, proposal, visit, planned, pointing, names, seed,
                                    first_index + len(observations))
    return observations


def _pointing(rng, profile):
    """The field centre as a function of MJD: fixed, or drifting along the ecliptic."""
    if profile.sky != "ecliptic":
        centre = field_centre(rng, profile.sky, profile.famous_fields)
        return lambda mjd: centre
    lon, lat = rng.uniform(0, 360), rng.normal(0, 2)
    rate = rng.uniform(0.02, 0.5) * rng.choice([-1, 1])  # degrees per day
    return lambda mjd: ecliptic_to_icrs((lon + rate * (mjd - 48000.0)) % 360.0, lat)


def _cycle(rng, kind: str) -> int:
    """Later cycles are busier; the kind's preferred cameras must have been there."""
    preferred = PROFILES[kind].detectors
    cycles = [c for c in CYCLES if any(d.name in preferred for d in active_detectors(c))]
    weights = np.array([1.0 + c / 8 for c in cycles])
    return int(cycles[rng.choice(len(cycles), p=weights / weights.sum())])


def _instrument_setups(rng, kind: str, cycle: int) -> list[tuple[Detector, str]]:
    """One or two detectors, each with one to four filters."""
    profile = PROFILES[kind]
    available = [d for d in active_detectors(cycle) if d.name in profile.detectors]
    weights = np.array([profile.detectors[d.name] for d in available])
    how_many = min(len(available), 2 if rng.random() < 0.3 else 1)
    chosen = rng.choice(len(available), size=how_many, replace=False, p=weights / weights.sum())
    combos = []
    for index in chosen:
        det = available[index]
        for flt in _filters(rng, det, profile.narrow, int(rng.integers(1, 5))):
            combos.append((det, flt))
    return combos


def _filters(rng, det: Detector, narrow_chance: float, count: int) -> list[str]:
    chosen: list[str] = []
    for _ in range(count):
        narrow = rng.random() < narrow_chance
        pool = [f.name for f in det.filters if f.narrow == narrow and f.name not in chosen]
        pool = pool or [f.name for f in det.filters if f.name not in chosen]
        if pool:
            chosen.append(pool[int(rng.integers(len(pool)))])
    return chosen


def _proposal_id(rng, cycle: int, used: set[int]) -> str:
    """Programme numbers grow with the cycle, as HST's do."""
    base = 1000 + (cycle - 1) * 520
    while True:
        number = int(rng.integers(base, base + 520))
        if number not in used:
            used.add(number)
            return str(number)


def _target_name(rng, kind: str) -> str:
    if kind == "calibration_frame":
        return ""
    return f"DEMO-{PROFILES[kind].code}-{int(rng.integers(1, 1000)):03d}"


def _observation_kind(rng, kind: str) -> str:
    """Mostly the programme's own kind; sometimes a parallel or secondary target."""
    companions = PROFILES[kind].companions
    if companions and rng.random() < 0.15:
        return companions[int(rng.integers(len(companions)))]
    return kind


def _exposure(rng, kind: str, det: Detector, flt: str, cycle: int) -> Exposure:
    lo, hi = PROFILES[kind].exptime
    variant = ""
    exptime = float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
    if kind == "calibration_frame":
        variant = str(rng.choice(["flat", "flat", "dark", "dark", "bias"]))
        if variant == "bias":
            exptime = 0.0
        elif variant == "dark":
            exptime = float(rng.choice([900.0, 1000.0, 1800.0]))
    return Exposure(kind, det.name, flt, 0.0, round(exptime, 1), cycle, variant)


def _visits(count: int, per_visit: int):
    """Observations grouped into visits: each visit runs through the instrument setups."""
    for start in range(0, count, per_visit):
        yield start // per_visit + 1, range(start, min(start + per_visit, count))


def _plan_visit(rng, proposal, visit, members, pointing, names, seed, first_index):
    """Pointing, orientation and timing of one visit's observations."""
    angle = float(rng.uniform(0, 360))
    spans = [_duration_s(exposure.exptime) / 86400.0 for _, exposure in members]
    start, end = cycle_mjd_range(proposal.cycle)
    t = float(rng.uniform(start, end - sum(spans) - 0.01 * len(spans) - 0.01))
    centre = pointing(t)
    tile = rng.normal(0, 120, 2) if rng.random() < 0.4 else rng.normal(0, 2, 2)
    observations = []
    for offset_index, ((kind, exposure), span) in enumerate(zip(members, spans)):
        index = first_index + offset_index
        det = detector(exposure.detector)
        shift = rng.normal(0, 360, 2) if kind != proposal.kind else np.zeros(2)
        ra, dec = offset(*centre, *(tile + shift))
        target = names.get(kind) or _CALIBRATION_TARGETS.get(exposure.variant, "")
        observations.append(Observation(
            index=index, obs_id=_obs_id(proposal.proposal_id, visit, det, exposure.filter),
            proposal=proposal, kind=kind, exposure=replace(exposure, angle_deg=round(angle, 3)),
            target_name=target, ra=ra, dec=dec, t_min=round(t, 6), t_max=round(t + span, 6),
            seed=(seed, 1, index)))
        t += span + 0.01
    return observations


def _duration_s(exptime: float) -> float:
    """Wall-clock span of an exposure sequence: Earth occultations split long ones."""
    orbits = max(1, math.ceil(exptime / _ORBIT_VISIBLE_S))
    return exptime + (orbits - 1) * (_ORBIT_S - _ORBIT_VISIBLE_S) + 120.0


def _visit_code(visit: int) -> str:
    if visit < 100:
        return f"{visit:02d}"
    visit -= 100
    return "abcdefghijklmnopqrstuvwxyz"[visit // 36 % 26] + np.base_repr(visit % 36, 36).lower()


def _obs_id(proposal_id: str, visit: int, det: Detector, flt: str) -> str:
    """HAP single-visit product name: hst_<prop>_<visit>_<inst>_<det>_<filter>_<ipppss>."""
    code = _visit_code(visit)
    program = np.base_repr(int(proposal_id), 36).lower().rjust(3, "0")
    return f"hst_{int(proposal_id):05d}_{code}_{det.code}_{flt.lower()}_{det.letter}{program}{code}"
