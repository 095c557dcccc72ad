"""Per-pixel calibrations of an imager: the elevation of each pixel's line of sight.

Two sources are read: THEMIS skymaps (IDL save files, ``themis_skymap_<site>_*.sav``, with
``FULL_ELEVATION`` in the orientation of the level-1 CDF frames; read with
:func:`scipy.io.readsav`, not flipped) and calibration FITS images such as Poker Flat DASC's
``*_El.FIT`` (degrees, the frame's orientation). Pixels without a line of sight (outside the
lens's field) come back as NaN.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.io import readsav

from arcscan.errors import InputError

SKYMAP_ELEVATION = "FULL_ELEVATION"


def read_elevation(path: str | Path) -> np.ndarray:
    """Per-pixel elevation (float32 degrees, NaN where undefined) of a THEMIS skymap (``.sav``)
    or an elevation FITS image."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"elevation map {path} not found")
    try:
        if path.suffix.lower() == ".sav":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # readsav cannot verify some record sizes
                try:
                    record = readsav(str(path))
                except Exception as err:  # scipy raises a bare Exception for a wrong signature
                    raise InputError(f"{path.name}: not an IDL save file ({err})") from err
            skymap = record.get("skymap")
            if skymap is None or SKYMAP_ELEVATION not in (skymap.dtype.names or ()):
                raise InputError(f"{path.name}: not a THEMIS skymap (no skymap.{SKYMAP_ELEVATION})")
            elevation = np.asarray(skymap[SKYMAP_ELEVATION][0], dtype=np.float32)
        else:
            elevation = np.asarray(fits.getdata(path), dtype=np.float32)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{path.name}: unreadable elevation map ({err})") from err
    if elevation.ndim != 2:
        raise InputError(f"{path.name}: elevation map has shape {elevation.shape}, expected one image")
    elevation = elevation.copy()
    elevation[(elevation < -90) | (elevation > 90)] = np.nan
    return elevation
