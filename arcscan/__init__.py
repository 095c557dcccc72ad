"""arcscan: discrete auroral arc segmentation in all-sky imager frames.

The public API is a handful of names; the rooms behind them are subpackages by concern:

- :mod:`arcscan.io`: frames in and out (THEMIS stream0 and level-1 CDF, FITS, PNG/TIFF/JPEG,
  ``.npy``), within limits
- :mod:`arcscan.core`: the method (normalisation, patches, model, PNU risk, training, the
  raster scan + dense CRF segmenter, metrics, synthetic skies, pictures)
- :mod:`arcscan.config`: every section of params.yaml, built once
- :mod:`arcscan.mlops`: MLflow tracking, registry and promotion (extra ``[mlops]``)
- :mod:`arcscan.ops`: stream client, auth proxy, tokens (extra ``[ops]``)

New areas get rooms of their own beside these: ``arcscan.geo`` (skymaps, geographic
coordinates, keograms), ``arcscan.archive`` (batch reprocessing on Ray) and ``arcscan.label``
(the labelling page).

    >>> import arcscan
    >>> segmenter = arcscan.load_settings("params.yaml").segmenter(arcscan.load_checkpoint("models/model.pt"))
    >>> for frame in arcscan.read_frames("20140310_0600_gill_themis19_full.pgm.gz"):
    ...     result = segmenter(frame)          # result.mask, result.objects, result.arc_fraction
    ...     record = arcscan.frame_record(frame, result)

Names load on first use (as scikit-image does), so ``import arcscan`` stays cheap for the
operations tools that need none of the numerical stack.
"""

from importlib import import_module

_EXPORTS = {
    "Frame": "arcscan.io.frames",
    "Limits": "arcscan.io.frames",
    "decode_frames": "arcscan.io.frames",
    "read_frames": "arcscan.io.frames",
    "write_stream0": "arcscan.io.frames",
    "input_name": "arcscan.io.frames",
    "Segmenter": "arcscan.core.segment",
    "Segmentation": "arcscan.core.segment",
    "frame_record": "arcscan.core.segment",
    "load_checkpoint": "arcscan.core.model",
    "mask_png": "arcscan.core.render",
    "Settings": "arcscan.config",
    "load_settings": "arcscan.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'arcscan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
