"""Per-pixel calibrations of an imager: the elevation (and azimuth) of each pixel's line of sight.

Two sources are read: THEMIS skymaps (IDL save files, ``themis_skymap_<site>_*.sav``), through
the one skymap reader :func:`arcscan.geo.skymap.read_skymap` (pyucalgarysrs; arrays as stored
in the file), and calibration FITS images such as Poker Flat DASC's ``*_El.FIT`` and
``*_Az.FIT`` (degrees, the frame's orientation). Pixels without a line of sight (outside the
lens's field) come back as NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from arcscan.errors import InputError


def read_calibration_image(path: str | Path) -> np.ndarray:
    """One per-pixel calibration image (float32; e.g. degrees of elevation or azimuth) of a FITS file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"calibration image {path} not found")
    try:
        image = np.asarray(fits.getdata(path), dtype=np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{path.name}: unreadable calibration image ({err})") from err
    if image.ndim != 2:
        raise InputError(f"{path.name}: calibration image has shape {image.shape}, expected one image")
    return image.copy()


def read_elevation(path: str | Path) -> np.ndarray:
    """Per-pixel elevation (float32 degrees, NaN where undefined) of a THEMIS skymap (``.sav``)
    or an elevation FITS image, as stored in the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"elevation map {path} not found")
    if path.suffix.lower() == ".sav":
        from arcscan.geo.skymap import read_skymap

        elevation = read_skymap(path).elevation.astype(np.float32)
    else:
        elevation = read_calibration_image(path)
    elevation[(elevation < -90) | (elevation > 90)] = np.nan
    return elevation
