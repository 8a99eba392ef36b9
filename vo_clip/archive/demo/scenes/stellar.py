"""Star clusters and star birth: globular clusters, star-forming regions, young disks."""

from __future__ import annotations

import math

import numpy as np

from ..primitives import Canvas, fft_blur, fractal_noise, gaussian, smoothstep
from .base import BRIGHT_STAR, Look, Scene
from .common import add_star_cluster, place, random_unit

__all__ = ["globular_cluster", "protoplanetary_disk", "star_forming_region"]


def globular_cluster(cv: Canvas, look: Look) -> Scene:
    """Thousands of old stars, densest in an unresolved core, thinning outwards."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.2)
    core = look.radius * rng.uniform(0.03, 0.12)
    q, pa = rng.uniform(0.85, 1.0), rng.uniform(0, math.pi)
    count = int(rng.uniform(4000, 15000) * (cv.size / 512) ** 2) + 200
    add_star_cluster(cv, cx, cy, count, core, brightest=rng.uniform(300, 3000),
                     faintest=0.08, slope=rng.uniform(0.7, 1.1), cutoff=look.radius * 2.5,
                     q=q, pa=pa, scale=look.continuum)
    unresolved = 1 / (1 + (cv.radius(cx, cy, pa, q) / core) ** 2)
    cv.image += unresolved * (rng.uniform(0.3, 2.5) * look.continuum)
    return Scene(field_stars=rng.uniform(0.2, 1.0), field_galaxies=0.3)


def star_forming_region(cv: Canvas, look: Look) -> Scene:
    """Glowing gas carved by a young cluster: pillars and dust with bright rims, jets."""
    rng = cv.rng
    cluster = _ionising_cluster(cv, look)
    x, y = cv.xy
    dx, dy = x - cluster[0], y - cluster[1]
    dist = np.sqrt(dx * dx + dy * dy) + 1
    cloud = np.exp(rng.uniform(0.5, 1.0) * fractal_noise(cv.size, rng, rng.uniform(2.8, 3.6)))
    cavity = look.radius * rng.uniform(0.3, 0.9)
    nebula = cloud * (0.3 + smoothstep(dist / cavity)) * rng.uniform(0.15, 0.5)
    dust = np.maximum(fractal_noise(cv.size, rng, 3.4) - rng.uniform(0.3, 1.2), 0)
    tau = dust * rng.uniform(1, 3)
    for _ in range(rng.integers(1, 5) if rng.random() < 0.7 else 0):
        tau = tau + _pillar(cv, look, cluster)
    # Cloud surfaces facing the cluster are lit: the derivative of the dust towards it.
    grad_y, grad_x = np.gradient(fft_blur(tau, 1.0))
    facing = np.clip((grad_x * dx + grad_y * dy) / dist, 0, None)
    rims = np.minimum(facing * rng.uniform(1.0, 3.0) * np.sqrt(look.radius / dist), 4)
    shadow = np.exp(-tau * look.dust)
    cv.image += nebula * (shadow + 0.06) + rims * np.sqrt(shadow)
    _herbig_haro_jets(cv, look, rng.integers(0, 3))
    return Scene(field_stars=rng.uniform(0.5, 2.0), field_galaxies=0.0, extinction=tau * look.dust)


def _ionising_cluster(cv: Canvas, look: Look) -> tuple[float, float]:
    rng = cv.rng
    cx, cy = place(cv, look, 0.8)
    core = look.radius * rng.uniform(0.02, 0.08)
    count = int(rng.uniform(40, 400) * (cv.size / 512)) + 10
    add_star_cluster(cv, cx, cy, count, core, brightest=rng.uniform(500, 5000), faintest=0.3,
                     slope=0.7, cutoff=look.radius, scale=max(look.continuum, 0.2))
    return cx, cy


def _pillar(cv: Canvas, look: Look, cluster) -> np.ndarray:
    """Optical depth of a dusty column whose rounded head points at the cluster."""
    rng = cv.rng
    tx, ty = place(cv, look, 0.45)
    angle = math.atan2(ty - cluster[1], tx - cluster[0])
    width = look.radius * rng.uniform(0.04, 0.12)
    along, across = cv.frame(tx, ty, angle)
    ragged = 1 + 0.3 * fractal_noise(cv.size, rng, 3.0)
    widening = 1 + np.clip(along, 0, None) * (rng.uniform(0.3, 1.5) / look.radius)
    trunk = width * widening * ragged - np.abs(across)
    head = width * ragged - np.sqrt(along * along + across * across)
    inside = np.where(along > 0, trunk, head)
    return smoothstep(inside / 2.0) * rng.uniform(2.0, 5.0)


def _herbig_haro_jets(cv: Canvas, look: Look, count: int) -> None:
    """Knotty jets from newborn stars, a chain of small bow shocks either side."""
    rng = cv.rng
    for _ in range(count):
        x0, y0 = place(cv, look, 0.7)
        ux, uy = random_unit(rng)
        length = look.radius * rng.uniform(0.08, 0.3)
        t = np.concatenate([np.linspace(0.1, 1, 6), -np.linspace(0.1, 1, 6)]) * length
        fluxes = rng.uniform(0.5, 3, t.size) * (1.2 - np.abs(t) / length)
        cv.add_points(x0 + ux * t, y0 + uy * t, fluxes, blur=1.0)


def protoplanetary_disk(cv: Canvas, look: Look) -> Scene:
    """A young star's disk: edge-on silhouette, Orion-style proplyds or a coronagraphic ring."""
    roll = cv.rng.random()
    if roll < 0.45:
        return _edge_on_disk(cv, look)
    if roll < 0.75:
        return _proplyds(cv, look)
    return _coronagraphic_disk(cv, look)


def _edge_on_disk(cv: Canvas, look: Look) -> Scene:
    """Two bowls of scattered light split by the dark lane of the disk; maybe a jet."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    pa = rng.uniform(0, math.pi)
    length = look.radius * rng.uniform(0.06, 0.2)
    along, across = cv.frame(cx, cy, pa)
    height = np.abs(along)
    flare = length * rng.uniform(0.4, 0.8) * np.sqrt(height / length + 0.08)
    lobes = np.exp(-(height / length) ** 1.5) * gaussian(across / flare, 1.0)
    fainter_side = np.where(along < 0, rng.uniform(0.2, 0.9), 1.0)
    lane = gaussian(along, length * rng.uniform(0.05, 0.12))
    lane *= smoothstep((length * rng.uniform(0.6, 1.2) - np.abs(across)) / 2)
    cv.image += lobes * fainter_side * np.exp(-6 * look.dust * lane) * rng.uniform(1, 5)
    if rng.random() < 0.6:
        t = np.concatenate([np.linspace(0.3, 3, 12), -np.linspace(0.3, 3, 12)]) * length
        knots = rng.uniform(0.3, 2, t.size) / (1 + np.abs(t) / length)
        cv.add_points(cx + math.cos(pa) * t, cy + math.sin(pa) * t, knots, blur=0.8)
    return Scene(field_stars=rng.uniform(0.3, 1.0), field_galaxies=0.2)


def _proplyds(cv: Canvas, look: Look) -> Scene:
    """Disks in a bright HII region: dark silhouettes and cusps lit by the hot stars."""
    rng = cv.rng
    nebula = np.exp(0.7 * fractal_noise(cv.size, rng, 3.2)) * rng.uniform(0.2, 0.7)
    cv.image += nebula
    sun_dir = random_unit(rng)
    for number in range(rng.integers(1, 5)):
        cx, cy = place(cv, look, 0.05 if number == 0 else 0.6)
        radius = look.radius * rng.uniform(0.012, 0.04) * (2.0 if number == 0 else 1.0)
        _one_proplyd(cv, cx, cy, radius, sun_dir, nebula)
    sx = look.centre[0] + sun_dir[0] * look.radius * 1.5
    sy = look.centre[1] + sun_dir[1] * look.radius * 1.5
    cv.add_points([sx], [sy], [3000.0], bright=BRIGHT_STAR)
    return Scene(field_stars=rng.uniform(0.5, 1.5), field_galaxies=0.0)


def _one_proplyd(cv: Canvas, cx, cy, radius, sun_dir, nebula) -> None:
    """A bright ionization front on the side facing the hot stars, a short fading tail."""
    rng = cv.rng
    box = cv.stamp(cx, cy, radius * 5)
    if box is None:
        return
    sl, grid = box
    toward, sideways = cv.frame(cx, cy, math.atan2(sun_dir[1], sun_dir[0]), grid=grid)
    r = np.sqrt(toward * toward + sideways * sideways) + 1e-3
    front = gaussian(r - radius * 1.5, 0.2 * radius + 0.6) * np.clip(toward / r, 0, 1) ** 0.7
    fading = np.exp(np.minimum(toward, 0) / (1.2 * radius)) * (toward < 0)
    tail = gaussian(sideways, radius) * fading
    glow = gaussian(r, 1.3 * radius)
    brightness = rng.uniform(0.4, 1.5)
    cv.image[sl] += (front + 0.25 * tail + 0.3 * glow) * brightness
    disk = smoothstep(radius * 0.8 - cv.radius(cx, cy, rng.uniform(0, math.pi),
                                                rng.uniform(0.15, 0.6), grid=grid))
    cv.image[sl] -= disk * (nebula[sl] + 0.3 * glow * brightness) * 0.85
    cv.add_points([cx], [cy], [rng.uniform(2, 40)])


def _coronagraphic_disk(cv: Canvas, look: Look) -> Scene:
    """A bright star hidden behind an occulting wedge, its disk a tilted ring of dust."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.05)
    radius = look.radius * rng.uniform(0.15, 0.5)
    pa, q = rng.uniform(0, math.pi), rng.uniform(0.15, 1.0)
    u, v = cv.frame(cx, cy, pa, q)
    r = np.sqrt(u * u + v * v)
    rings = np.zeros_like(r)
    for _ in range(rng.integers(1, 4)):
        ring_r = radius * rng.uniform(0.4, 1.0)
        rings += gaussian(r - ring_r, ring_r * rng.uniform(0.04, 0.15))
    forward_scattering = 1 + rng.uniform(0.2, 1.5) * smoothstep(0.5 + v * (q / radius))
    cv.image += rings * forward_scattering * rng.uniform(0.3, 2.0)
    speckles = fractal_noise(cv.size, rng, 2.2) * np.exp(-r / (0.25 * radius))
    cv.image += speckles * rng.uniform(1, 4)
    wedge = np.abs(cv.frame(cx, cy, rng.uniform(0, math.pi))[1]) < radius * 0.08
    cv.image[(r < 0.12 * radius) | wedge] = 0
    return Scene(field_stars=rng.uniform(0.2, 0.8), field_galaxies=0.3)
