"""Synthetic THEMIS all-sky frames with a ground-truth mask of the discrete auroral arcs.

The physical picture, from the sky down to the CCD:

* The imager looks at the whole sky through a fisheye lens with an equidistant projection:
  the zenith angle grows linearly with the distance from the disc centre and the horizon
  (90 degrees) lies on the rim of a disc about 240 px across. Outside the disc the CCD sees
  only its bias and a little stray light, so the corners sit near 3300 counts.
* Aurora and airglow glow in thin shells about 100 km up. A pixel is mapped onto that shell
  by the geometry code of real imagers (:mod:`arcscan.geo`: the imager is an ideal fisheye
  at :data:`SYNTHETIC_SITE` seen as a map, north up and east right, on the WGS84 ellipsoid)
  to get its "along" (east) and "across" (north) position in km, in the plane tangent to the
  shell above the site. A discrete arc is a narrow band in those coordinates: a gently bent centre-line with
  small folds, drifting slowly across and flickering. The projection alone makes an arc
  that is straight in the sky look curved in the image, its ends running into the horizon
  near the east and west points, as real arcs do. Looking obliquely through a shell makes
  it brighter (van Rhijn), atmospheric extinction makes it fainter near the horizon.
* Diffuse aurora is broad low-contrast glow; stars are fixed point sources blurred by the
  optics; the moon is a saturated dot with a halo and brightens the whole sky; clouds are
  fractal patches that dim what lies above them and scatter moon- and city light; trees
  and buildings cut dark notches into the rim; the lens darkens towards the rim
  (vignetting).
* The CCD adds shot noise (photo-electrons, about 1.6 counts each), read noise, a few hot
  pixels and the 3300-count bias, and saturates at 65535.

The ground truth marks the pixels of the sky (inside the disc, not behind an obstruction)
where a discrete arc's own emission is at least half its local peak across the arc, i.e.
its full-width-at-half-maximum band. Diffuse aurora, moon, clouds and stars are not arc.
A minute is 20 frames 3 s apart: stars stay put, arcs and clouds drift, aurora flickers
and the noise is drawn afresh for every frame. Everything comes from one
``numpy.random.default_rng(seed)``, so a seed always gives byte-identical frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from scipy import ndimage

from arcscan.geo.coords import MEAN_EARTH_RADIUS_KM as EARTH_RADIUS_KM
from arcscan.geo.coords import Site, east_north, shell_point
from arcscan.geo.skymap import fisheye_angles
from arcscan.io.frames import Frame, format_timestamp, stream0_name, write_stream0

CADENCE_S = 3.0
SYNTHETIC_SITE = Site(56.38, -94.64, 0.0)  # where the synthetic imager stands (THEMIS Gillam's place); params.yaml's synthetic profile
AURORA_HEIGHT_KM = 110.0
AIRGLOW_HEIGHT_KM = 95.0
SATURATION = 65535
_FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene; lengths in pixels are for a 256 x 256 frame and scale with it."""

    ccd_background: float = 3300.0  # bias, counts
    gain: float = 1.6  # counts per photo-electron
    read_noise: float = 10.0  # counts rms
    disc_radius: tuple[float, float] = (115.0, 125.0)  # px
    centre_jitter: float = 4.0  # px, largest offset of the disc centre from the frame centre
    vignetting: tuple[float, float] = (0.45, 0.65)  # fraction of the light lost at the rim
    stray_light: tuple[float, float] = (60.0, 140.0)  # counts outside the disc, dark sky
    airglow: tuple[float, float] = (250.0, 1000.0)  # counts at the zenith
    extinction: tuple[float, float] = (0.1, 0.3)  # optical depth at the zenith
    stars: tuple[int, int] = (30, 200)
    hot_pixels: tuple[int, int] = (2, 12)
    p_obstruction: float = 0.6
    p_moon: float = 0.3
    moon_sky: tuple[float, float] = (800.0, 3500.0)  # scattered moonlight, counts
    p_clouds: float = 0.35
    p_diffuse: float = 0.5
    diffuse_peak: tuple[float, float] = (150.0, 1200.0)  # counts
    p_no_arcs: float = 0.3
    max_arcs: int = 3
    arc_peak: tuple[float, float] = (120.0, 8000.0)  # counts, drawn log-uniformly
    arc_fwhm: tuple[float, float] = (3.0, 20.0)  # px, limits of the width along an arc
    arc_zenith: float = 75.0  # degrees, largest zenith angle of the first arc's middle


def generate_minute(
    seed: int,
    start: datetime,
    n_frames: int = 20,
    site: str = "synt",
    imager: str = "themis99",
    shape: tuple[int, int] = (256, 256),
    config: SceneConfig = SceneConfig(),
) -> tuple[list[Frame], np.ndarray]:
    """One synthetic minute: ``n_frames`` frames 3 s apart (uint16 counts, THEMIS-style
    metadata) and their ground-truth arc masks, a bool array (n_frames, H, W).

    A naive ``start`` is taken as UTC.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    start = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
    rng = np.random.default_rng(seed)
    times = CADENCE_S * np.arange(n_frames)
    optics = _optics(rng, shape, config)
    airglow = _airglow(rng, optics, config)
    stars = _stars(rng, optics, config)
    moon = _moon(rng, optics, config)
    cloud_absorption, cloud_light = _clouds(rng, optics, config, moon, airglow, times)
    arcs = _draw_arcs(rng, config, optics.scale)
    diffuse = _diffuse_aurora(rng, optics, config, times, arcs)
    hot = _hot_pixels(rng, shape, config)

    aurora = np.empty((n_frames, *shape))
    masks = np.zeros((n_frames, *shape), dtype=bool)
    for i, t in enumerate(times):
        aurora[i] = diffuse[i]
        for arc in arcs:
            emission, band = _arc_emission(arc, optics, t)
            aurora[i] += emission
            masks[i] |= band
    masks &= optics.sky

    sky = (airglow + stars + aurora * optics.aurora_gain) * (1.0 - cloud_absorption) + cloud_light + moon
    signal = sky * optics.transmission + _stray_light(rng, optics, config, sky) + hot
    images = _expose(rng, signal, config)

    name = stream0_name(start, site, imager)
    frames = [
        Frame(
            image,
            {
                "Site unique ID": site,
                "Imager unique ID": imager,
                "Image request start": format_timestamp(start + timedelta(seconds=float(t))),
                "Ccd background": f"{config.ccd_background:.0f}",
                "Pixel depth": "16 bits",
                "Synthetic seed": str(seed),
            },
            name,
            i,
        )
        for i, (image, t) in enumerate(zip(images, times))
    ]
    return frames, masks


def mask_path(frames_path: str | Path) -> Path:
    """Where the masks of a stream0 file live: ``<stem>.mask.npz`` next to it."""
    frames_path = Path(frames_path)
    stem = frames_path.name.removesuffix(".gz").removesuffix(".pgm")
    return frames_path.with_name(stem + ".mask.npz")


def write_minute(
    directory: str | Path,
    seed: int,
    start: datetime,
    n_frames: int = 20,
    site: str = "synt",
    imager: str = "themis99",
    shape: tuple[int, int] = (256, 256),
    config: SceneConfig = SceneConfig(),
) -> tuple[Path, Path]:
    """Write a synthetic minute as a stream0 ``.pgm.gz`` and its masks as ``.mask.npz``
    (key ``masks``) in ``directory``; returns both paths."""
    frames, masks = generate_minute(seed, start, n_frames, site, imager, shape, config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frames_path = write_stream0(directory / frames[0].source, frames)
    masks_file = mask_path(frames_path)
    np.savez_compressed(masks_file, masks=masks)
    return frames_path, masks_file


def read_masks(path: str | Path) -> np.ndarray:
    """The ground-truth masks written by :func:`write_minute`, bool (n_frames, H, W)."""
    with np.load(path, allow_pickle=False) as archive:
        masks = archive["masks"]
    if masks.ndim != 3 or masks.dtype != bool:
        raise ValueError(f"{path}: expected a bool (n, H, W) array, got {masks.dtype} {masks.shape}")
    return masks


# --------------------------------------------------------------------------------------------
# Optics: where each pixel looks and how much light reaches it


@dataclass(frozen=True)
class _Optics:
    """Per-pixel geometry of one imager (arrays of the frame's shape)."""

    scale: float  # frame size relative to 256 px
    centre: tuple[float, float]  # disc centre (x right, y down), px
    radius: float  # disc radius, px
    distance: np.ndarray  # px from the disc centre
    dx: np.ndarray  # px from the disc centre, right
    dy: np.ndarray  # px from the disc centre, up
    zenith: np.ndarray  # zenith angle, rad (clamped just below the horizon)
    along: np.ndarray  # km along the aurora shell, image right
    across: np.ndarray  # km across the aurora shell, image up
    extinction: np.ndarray  # fraction of starlight that gets through the atmosphere
    aurora_gain: np.ndarray  # van Rhijn brightening times extinction, for the aurora shell
    transmission: np.ndarray  # vignetting, disc rim and obstructions
    sky: np.ndarray  # bool: unobstructed sky inside the disc


def _optics(rng: np.random.Generator, shape: tuple[int, int], config: SceneConfig) -> _Optics:
    """Draw the disc (centre, radius, vignetting, obstructions) and map pixels onto the sky."""
    height, width = shape
    scale = min(shape) / 256.0
    cx = (width - 1) / 2 + rng.uniform(-1, 1) * config.centre_jitter * scale
    cy = (height - 1) / 2 + rng.uniform(-1, 1) * config.centre_jitter * scale
    radius = rng.uniform(*config.disc_radius) * scale
    rows, cols = np.mgrid[:height, :width].astype(float)
    dx, dy = cols - cx, cy - rows
    distance = np.hypot(dx, dy)
    azimuth, elevation = fisheye_angles(shape, (cx, cy), radius)
    zenith = np.radians(90.0 - np.maximum(elevation, 90.0 * (1 - 0.995)))  # clamped just above the horizon
    along, across = _shell_east_north(azimuth, 90.0 - np.degrees(zenith))
    extinction = np.exp(-rng.uniform(*config.extinction) * (_airmass(zenith) - 1.0))

    rim = 0.5 * (1.0 - np.tanh((distance - radius) / (1.2 * scale)))
    vignetting = 1.0 - rng.uniform(*config.vignetting) * (distance / radius) ** rng.uniform(1.8, 2.6)
    blocked = _obstructions(rng, distance, np.arctan2(dy, dx), radius, scale, config)
    transmission = np.clip(vignetting, 0.0, 1.0) * rim * (1.0 - 0.93 * blocked)
    return _Optics(
        scale=scale,
        centre=(cx, cy),
        radius=radius,
        distance=distance,
        dx=dx,
        dy=dy,
        zenith=zenith,
        along=along,
        across=across,
        extinction=extinction,
        aurora_gain=_van_rhijn(zenith, AURORA_HEIGHT_KM) * extinction,
        transmission=transmission,
        sky=(distance <= radius) & (blocked < 0.5),
    )


def _shell_east_north(azimuth: np.ndarray, elevation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Km east and north, on the aurora shell's tangent plane above the site, of where the
    lines of sight (degrees) pierce the shell."""
    latitude, longitude = shell_point(SYNTHETIC_SITE, azimuth, elevation, AURORA_HEIGHT_KM)
    return east_north(SYNTHETIC_SITE, latitude, longitude, AURORA_HEIGHT_KM)


def _van_rhijn(zenith: np.ndarray, height_km: float) -> np.ndarray:
    """Brightening of a thin emitting shell seen obliquely (path length through it)."""
    ratio = EARTH_RADIUS_KM / (EARTH_RADIUS_KM + height_km) * np.sin(zenith)
    return 1.0 / np.sqrt(1.0 - ratio**2)


def _airmass(zenith: np.ndarray) -> np.ndarray:
    """Relative path length through the atmosphere (Kasten & Young 1989)."""
    elevation = 90.0 - np.degrees(zenith)
    return 1.0 / (np.cos(zenith) + 0.50572 * (elevation + 6.07995) ** -1.6364)


def _obstructions(
    rng: np.random.Generator,
    distance: np.ndarray,
    azimuth: np.ndarray,
    radius: float,
    scale: float,
    config: SceneConfig,
) -> np.ndarray:
    """Soft 0..1 map of trees (jagged, pointed tops) and buildings (flat roofs) standing in
    front of the rim; no obstruction with probability ``1 - p_obstruction``."""
    if rng.random() >= config.p_obstruction:
        return np.zeros_like(distance)
    bins = np.linspace(-np.pi, np.pi, 1440, endpoint=False)
    profile = np.zeros_like(bins)  # obstruction height (px inward from the rim) per azimuth
    for _ in range(rng.integers(1, 5)):
        centre, half_span = rng.uniform(-np.pi, np.pi), rng.uniform(0.05, 0.4)
        offset = np.angle(np.exp(1j * (bins - centre)))
        if rng.random() < 0.65:  # a stand of trees: overlapping triangles
            n = rng.integers(3, 25)
            tops = centre + rng.uniform(-half_span, half_span, n)
            heights = rng.uniform(2, 10, n) * scale
            half_widths = heights * rng.uniform(0.15, 0.35, n) / radius
            gap = np.abs(np.angle(np.exp(1j * (bins[:, None] - tops))))
            shape = (heights * np.clip(1.0 - gap / half_widths, 0.0, 1.0)).max(axis=1)
        else:  # a building
            shape = np.where(np.abs(offset) < half_span / 2, rng.uniform(3, 10) * scale, 0.0)
        profile = np.maximum(profile, shape)
    index = np.clip(((azimuth + np.pi) / (2 * np.pi) * bins.size).astype(int), 0, bins.size - 1)
    return np.clip(distance - (radius - profile[index]) + 0.5, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Sky components, in counts above the bias before the optics' transmission


def _airglow(rng: np.random.Generator, optics: _Optics, config: SceneConfig) -> np.ndarray:
    """Night-sky glow: brighter towards the horizon (van Rhijn), with faint large patches."""
    shape = optics.distance.shape
    zenith_level = np.exp(rng.uniform(*np.log(config.airglow)))
    patches = 1.0 + 0.1 * _fractal_field(_fractal_spectrum(rng, shape, 4.0), shape)
    return zenith_level * _van_rhijn(optics.zenith, AIRGLOW_HEIGHT_KM) * optics.extinction * patches


def _stars(rng: np.random.Generator, optics: _Optics, config: SceneConfig) -> np.ndarray:
    """Point sources spread evenly over the disc with a steep power law of brightness,
    blurred by a Gaussian PSF and dimmed by extinction."""
    n = rng.integers(config.stars[0], config.stars[1] + 1)
    r = optics.radius * np.sqrt(rng.uniform(0.0, 0.98, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    height, width = optics.distance.shape
    x, y = optics.centre[0] + r * np.cos(angle), optics.centre[1] + r * np.sin(angle)
    flux = np.minimum(300.0 * rng.uniform(0.0, 1.0, n) ** (-1 / 1.1), 3e5)  # counts per star
    points = np.zeros((height + 1, width + 1))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(points, (y0 + oy, x0 + ox), weight * flux)
    psf_sigma = rng.uniform(0.6, 0.9) * optics.scale
    return ndimage.gaussian_filter(points[:height, :width], psf_sigma) * optics.extinction


def _moon(rng: np.random.Generator, optics: _Optics, config: SceneConfig) -> np.ndarray:
    """The moon (sometimes): a saturated dot with a tight halo and a wide glow, plus
    scattered moonlight over the whole sky, brighter towards the moon. It may sit just
    below the rim, lighting one side only."""
    if rng.random() >= config.p_moon:
        return np.zeros_like(optics.distance)
    r, angle = optics.radius * rng.uniform(0.25, 1.15), rng.uniform(0, 2 * np.pi)
    d = np.hypot(optics.dx - r * np.cos(angle), optics.dy - r * np.sin(angle)) / optics.scale
    level = rng.uniform(*config.moon_sky)
    glow = level * (0.6 + 0.4 * np.exp(-d / 150.0)) + rng.uniform(0.5, 1.5) * level / (1.0 + (d / rng.uniform(30, 70)) ** 2)
    halo = rng.uniform(2000, 6000) * np.exp(-d / rng.uniform(3, 8))
    disc = 1e5 * np.exp(-0.5 * d**2) if r < optics.radius else 0.0
    return glow + halo + disc


def _clouds(
    rng: np.random.Generator,
    optics: _Optics,
    config: SceneConfig,
    moon: np.ndarray,
    airglow: np.ndarray,
    times: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Drifting fractal clouds (sometimes): per frame, the fraction of the light from above
    they absorb and the moon- and city light they scatter, both (n_frames, H, W)."""
    shape = (times.size, *optics.distance.shape)
    if rng.random() >= config.p_clouds:
        return np.zeros(shape), np.zeros(shape)
    spectrum = _fractal_spectrum(rng, optics.distance.shape, rng.uniform(3.2, 4.0))
    vx, vy = rng.normal(0.0, 0.3, 2) * optics.scale  # px/s
    fields = np.stack([_fractal_field(spectrum, shape[1:], (vx * t, vy * t)) for t in times])
    threshold = np.quantile(fields[0], 1.0 - rng.uniform(0.2, 1.0))  # cloud cover 20-100%
    density = 0.5 * (1.0 + np.tanh((fields - threshold) / rng.uniform(0.4, 1.5)))
    opacity = rng.uniform(0.5, 0.95)
    city = rng.uniform(0.1, 0.6) * airglow.mean() * (1.0 + (optics.distance / optics.radius) ** 2)
    moonlit = rng.uniform(0.5, 1.2) * np.minimum(moon, 2 * moon.mean() + 1.0)
    return opacity * density, density * (city + moonlit)


def _diffuse_aurora(
    rng: np.random.Generator, optics: _Optics, config: SceneConfig, times: np.ndarray, arcs: list[_Arc]
) -> np.ndarray:
    """Diffuse aurora (sometimes): broad patches in a wide east-west belt, pulsating a little;
    never brighter than half the faintest arc. Returns (n_frames, H, W)."""
    shape = (times.size, *optics.distance.shape)
    if rng.random() >= config.p_diffuse:
        return np.zeros(shape)
    peak = np.exp(rng.uniform(*np.log(config.diffuse_peak)))
    if arcs:
        peak = min(peak, 0.5 * min(arc.peak for arc in arcs))
    field = _fractal_field(_fractal_spectrum(rng, shape[1:], 4.0), shape[1:])
    patches = np.clip(field - rng.uniform(-0.5, 0.8), 0.0, None)
    belt = np.exp(-0.5 * ((optics.across - rng.uniform(-500, 500)) / rng.uniform(150, 400)) ** 2)
    pattern = patches * belt
    pattern /= max(pattern.max(), 1e-9)
    depth, period, phase = rng.uniform(0.0, 0.4), rng.uniform(5, 20), rng.uniform(0, 2 * np.pi)
    pulsation = 1.0 + depth * np.sin(2 * np.pi * times / period + phase)
    return peak * pulsation[:, None, None] * pattern


def _hot_pixels(rng: np.random.Generator, shape: tuple[int, int], config: SceneConfig) -> np.ndarray:
    """A few pixels with a large dark current, anywhere on the CCD."""
    hot = np.zeros(shape)
    n = rng.integers(config.hot_pixels[0], config.hot_pixels[1] + 1)
    hot[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = np.exp(rng.uniform(np.log(300), np.log(20000), n))
    return hot


def _stray_light(rng: np.random.Generator, optics: _Optics, config: SceneConfig, sky: np.ndarray) -> np.ndarray:
    """Light scattered inside the camera: a floor that rises with the sky brightness, a glow
    just outside the rim and a faint reflection off the lens housing a few px beyond it."""
    edge = sky[:, (optics.distance > 0.9 * optics.radius) & (optics.distance < optics.radius)].mean(axis=1)
    beyond = np.maximum(optics.distance - optics.radius, 0.0) / optics.scale
    floor = rng.uniform(*config.stray_light) + 0.03 * sky.mean(axis=(1, 2))
    outside = 0.05 * np.exp(-beyond / 6.0) + 0.07 * np.exp(-0.5 * ((beyond - 4.0) / 1.0) ** 2)
    return floor[:, None, None] + edge[:, None, None] * outside * (beyond > 0)


def _expose(rng: np.random.Generator, signal: np.ndarray, config: SceneConfig) -> np.ndarray:
    """Counts read out: bias + gain x Poisson(photo-electrons) + read noise, saturating."""
    electrons = rng.poisson(np.maximum(signal, 0.0) / config.gain)
    counts = config.ccd_background + config.gain * electrons + rng.normal(0.0, config.read_noise, signal.shape)
    return np.clip(np.rint(counts), 0, SATURATION).astype(np.uint16)


# --------------------------------------------------------------------------------------------
# Discrete arcs


@dataclass(frozen=True)
class _Arc:
    """One discrete arc. Its position and bend are in km on the aurora shell; what varies
    along it (folds, brightness, width, ends) is tabulated against the image coordinate
    along the arc, in px, so that it stays resolved even where the projection squeezes the
    arc into the horizon."""

    rotation: float  # rad, tilt from the image's east-west axis
    offset_km: float  # across-arc position of the centre-line at t = 0 (0 = zenith)
    drift_km_s: float
    sag_km: float  # centre-line bend at 1000 km along the arc
    folds: np.ndarray  # (modes, 3): amplitude km, wavenumber rad/px, phase
    brightness: np.ndarray  # modes of the log-brightness along the arc
    width: np.ndarray  # modes of the log-width along the arc
    travel_px_s: float  # speed of folds and bright spots along the arc
    peak: float  # counts, typical peak across the arc
    fwhm_px: float  # typical full width at half maximum across the arc
    fwhm_limits_px: tuple[float, float]
    skew: float  # the two flanks' widths are fwhm * (1 +- skew)
    ends_px: tuple[float, float]  # where the arc fades out along its length
    flicker: tuple[float, float, float]  # depth, period s, phase


def _draw_arcs(rng: np.random.Generator, config: SceneConfig, scale: float) -> list[_Arc]:
    """Zero arcs with probability ``p_no_arcs``, else 1..max_arcs (each extra one half as
    likely), roughly parallel and 40-250 km apart. The first one's middle is placed
    uniformly in zenith angle, so that arcs overhead are as common as arcs low in the sky."""
    if rng.random() < config.p_no_arcs:
        return []
    weights = 0.5 ** np.arange(config.max_arcs)
    count = 1 + rng.choice(config.max_arcs, p=weights / weights.sum())
    rotation, sag = rng.normal(0.0, np.radians(8)), rng.normal(0.0, 40.0)
    zenith = np.radians(rng.uniform(-config.arc_zenith, config.arc_zenith))
    offset = np.sign(zenith) * float(_shell_east_north(0.0, 90.0 - np.degrees(np.abs(zenith)))[1])  # km north of the zenith
    fwhm_low, fwhm_high = (limit * scale for limit in config.arc_fwhm)
    arcs = []
    for _ in range(count):
        whole = rng.random() < 0.5
        ends = (-np.inf, np.inf) if whole else tuple(np.sort(rng.uniform(-90, 90, 2) * scale) + np.array([-20, 20]) * scale)
        arcs.append(
            _Arc(
                rotation=rotation + rng.normal(0.0, np.radians(3)),
                offset_km=offset,
                drift_km_s=rng.uniform(-0.1, 0.1),
                sag_km=sag + rng.normal(0.0, 10.0),
                folds=_modes(rng, 3, (40.0 * scale, 250.0 * scale), rng.uniform(0.5, 3.0)),
                brightness=_modes(rng, 3, (40.0 * scale, 300.0 * scale), rng.uniform(0.1, 0.4)),
                width=_modes(rng, 2, (60.0 * scale, 300.0 * scale), rng.uniform(0.1, 0.35)),
                travel_px_s=rng.uniform(-0.5, 0.5) * scale,
                peak=np.exp(rng.uniform(*np.log(config.arc_peak))),
                fwhm_px=np.exp(rng.uniform(np.log(fwhm_low * 1.3), np.log(fwhm_high * 0.7))),  # room to vary
                fwhm_limits_px=(fwhm_low, fwhm_high),
                skew=rng.uniform(-0.3, 0.3),
                ends_px=ends,
                flicker=(rng.uniform(0.0, 0.15), rng.uniform(10.0, 60.0), rng.uniform(0, 2 * np.pi)),
            )
        )
        offset += rng.choice([-1, 1]) * rng.uniform(40.0, 250.0)
    return arcs


def _modes(rng: np.random.Generator, n: int, wavelengths: tuple[float, float], rms: float) -> np.ndarray:
    """``n`` sinusoids with random wavelengths and phases whose sum has the given rms."""
    amplitude = rng.uniform(0.5, 1.0, n)
    amplitude *= rms * np.sqrt(2.0 / np.sum(amplitude**2))
    wavenumber = 2 * np.pi / rng.uniform(*wavelengths, n)
    return np.column_stack([amplitude, wavenumber, rng.uniform(0, 2 * np.pi, n)])


def _series(modes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Sum of the sinusoids of :func:`_modes` at ``x``."""
    amplitude, wavenumber, phase = modes.T
    return np.sin(np.multiply.outer(x, wavenumber) + phase) @ amplitude


def _arc_emission(arc: _Arc, optics: _Optics, t: float) -> tuple[np.ndarray, np.ndarray]:
    """An arc's emission (counts on the shell, before the optics) at time ``t`` and its
    FWHM band (bool), both (H, W).

    The across-arc distance in px is the offset from the centre-line (km) divided by its
    local gradient (km/px), so the widths are in image pixels wherever the arc is.
    """
    cos, sin = np.cos(arc.rotation), np.sin(arc.rotation)
    along_km = optics.along * cos + optics.across * sin
    across_km = optics.across * cos - optics.along * sin
    along_px = optics.dx * cos + optics.dy * sin
    grid = np.linspace(-1.1, 1.1, 512) * optics.radius
    moving = grid - arc.travel_px_s * t
    start, end = arc.ends_px
    fade = 0.25 * (1 + np.tanh((grid - start) / (8 * optics.scale))) * (1 + np.tanh((end - grid) / (8 * optics.scale)))
    depth, period, phase = arc.flicker
    peak = arc.peak * (1 + depth * np.sin(2 * np.pi * t / period + phase)) * np.exp(_series(arc.brightness, moving))
    fwhm = np.clip(arc.fwhm_px * np.exp(_series(arc.width, moving)), *arc.fwhm_limits_px)

    centre = arc.offset_km + arc.drift_km_s * t + arc.sag_km * (along_km / 1000.0) ** 2
    offset = across_km - centre - np.interp(along_px, grid, _series(arc.folds, moving))
    slope_y, slope_x = np.gradient(offset)
    px = offset / np.maximum(np.hypot(slope_x, slope_y), 1e-9)
    sigma = np.interp(along_px, grid, fwhm) / _FWHM_PER_SIGMA * (1 + arc.skew * np.sign(px))
    profile = np.exp(-0.5 * (px / sigma) ** 2)
    present = np.interp(along_px, grid, fade)
    return np.interp(along_px, grid, peak) * present * profile, (profile >= 0.5) & (present >= 0.5)


# --------------------------------------------------------------------------------------------
# Noise fields


def _fractal_spectrum(rng: np.random.Generator, shape: tuple[int, int], slope: float) -> np.ndarray:
    """Half-plane Fourier spectrum of a zero-mean, unit-variance random field whose power
    falls as ``frequency ** -slope`` (2.5-4: clouds to smooth glow)."""
    frequency = np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.rfftfreq(shape[1])[None, :])
    frequency[0, 0] = np.inf
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * frequency ** (-slope / 2)
    return spectrum / np.fft.irfft2(spectrum, s=shape).std()


def _fractal_field(spectrum: np.ndarray, shape: tuple[int, int], shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The field of :func:`_fractal_spectrum`, moved by ``shift`` = (right, up) px (periodic)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    ramp = np.exp(-2j * np.pi * (fx * shift[0] - fy * shift[1]))
    return np.fft.irfft2(spectrum * ramp, s=shape)

