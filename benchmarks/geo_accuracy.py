"""How well arcscan.geo places pixels and arcs (the figures of the README's geophysics section).

* the GAKO skymap's precomputed 90/110/150 km latitudes/longitudes against the ones computed
  here from its azimuth/elevation (pymap3d, WGS84): difference in km above 10 and 20 degrees;
* the zenith pixel's shell point against the site;
* the real Poker Flat DASC reference arcs away from the horizon: mean absolute orientation from
  geographic and from magnetic (AACGM-v2) east-west;
* bands of known latitude, width and length on the synthetic imager: errors of the reported
  figures.

Usage: python benchmarks/geo_accuracy.py [-o reports/geo_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np

from arcscan.config import load_settings
from arcscan.core.segment import arc_objects
from arcscan.core.synth import SYNTHETIC_SITE
from arcscan.geo.arcs import arc_geo
from arcscan.geo.coords import east_north, from_east_north, shell_point
from arcscan.geo.skymap import fisheye_geometry
from arcscan.io.frames import read_frames

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "real"


def skymap_agreement(settings) -> dict:
    frame = read_frames(REAL / "valid" / "thg_l1_asf_gako_2011010617_v01.cdf")[0]
    geometry = settings.sky_finder().geometry(frame.site, frame.imager, frame.image.shape)
    figures = {}
    for altitude in sorted(geometry.corners):
        precomputed = geometry.ground(altitude)
        lat, lon = shell_point(geometry.site, geometry.azimuth, geometry.elevation, altitude)
        east, north = east_north(geometry.site, lat, lon, altitude)
        difference = np.hypot(east - precomputed.east, north - precomputed.north)
        elevation = np.nan_to_num(geometry.elevation, nan=-90)
        zenith_east, zenith_north = precomputed.east[geometry.zenith], precomputed.north[geometry.zenith]
        figures[f"{altitude:g}_km"] = {
            "worst_km_above_10_deg": round(float(difference[elevation >= 10].max()), 3),
            "p99_km_above_10_deg": round(float(np.percentile(difference[elevation >= 10], 99)), 3),
            "median_km_above_10_deg": round(float(np.median(difference[elevation >= 10])), 4),
            "worst_km_above_20_deg": round(float(difference[elevation >= 20].max()), 3),
            "zenith_pixel_from_site_km": round(float(np.hypot(zenith_east, zenith_north)), 3),
        }
    return figures


def dasc_reference_orientations(settings) -> tuple[list[float], list[float]]:
    """Absolute geographic and magnetic orientations (degrees) of the DASC reference arcs
    that stay away from the horizon (none without ``data/real/valid``)."""
    finder = settings.sky_finder()
    geographic, magnetic = [], []
    for path in sorted((REAL / "valid").glob("PKR_DASC_*.FITS")):
        frame = read_frames(path)[0]
        measure = finder.arc_measure(frame.site, frame.imager, frame.image.shape, frame.timestamp)
        with np.load(f"{path}.ref.npz") as reference:
            arcs = reference["arcs"][0]
        for number in range(1, arcs.max() + 1):
            geo = measure(*np.nonzero(arcs == number))
            if not geo.near_horizon:
                geographic.append(abs(geo.orientation_geo_deg))
                magnetic.append(abs(geo.orientation_mag_deg))
    return geographic, magnetic


def dasc_orientations(settings) -> dict:
    geographic, magnetic = dasc_reference_orientations(settings)
    return {"arcs_away_from_horizon": len(geographic), "mean_abs_orientation_geographic_deg": round(float(np.mean(geographic)), 1), "mean_abs_orientation_magnetic_deg": round(float(np.mean(magnetic)), 1)}


def known_bands() -> list[dict]:
    geometry = fisheye_geometry((256, 256), (127.5, 127.5), 126.0, SYNTHETIC_SITE)
    ground = geometry.ground(110.0)
    measure = partial(arc_geo, ground=ground, elevation=geometry.elevation, site=SYNTHETIC_SITE, when=None, near_horizon_elevation=20.0)
    results = []
    for north_km, width_km, length_km in ((0.0, 20.0, 300.0), (-120.0, 20.0, 300.0), (150.0, 20.0, 300.0), (0.0, 8.0, 200.0), (300.0, 20.0, 300.0)):
        across = ground.north - north_km
        mask = np.nan_to_num(np.exp(-0.5 * (across / (width_km / 2.3548)) ** 2) * (np.abs(ground.east) <= length_km / 2)) >= 0.5
        (arc,) = arc_objects(mask, mask.astype(np.float32), 20, measure)
        (true_lat,), _ = from_east_north(SYNTHETIC_SITE, [0.0], [north_km], 110.0)
        results.append({
            "north_km": north_km, "width_km": width_km, "length_km": length_km,
            "centroid_error_km": round(float((arc.geo.centroid_lat - true_lat) * 111.2), 2),
            "width_error_percent": round(100 * (arc.geo.mean_width_km / width_km - 1), 1),
            "length_error_percent": round(100 * (arc.geo.length_km / length_km - 1), 1),
            "orientation_deg": round(arc.geo.orientation_geo_deg, 2),
            "near_horizon": arc.geo.near_horizon,
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(ROOT / "reports" / "geo_accuracy.json"))
    args = parser.parse_args()
    settings = load_settings(ROOT / "params.yaml")
    report = {"skymap_gako": skymap_agreement(settings), "dasc_reference_arcs": dasc_orientations(settings), "known_bands": known_bands()}
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
