"""From pixels to geophysics: where each pixel looks (:mod:`~arcscan.geo.skymap`), coordinates
on the emission shell and in AACGM-v2 (:mod:`~arcscan.geo.coords`), arcs in kilometres and
degrees of latitude (:mod:`~arcscan.geo.arcs`), keograms (:mod:`~arcscan.geo.keogram`) and the
arc catalog (:mod:`~arcscan.geo.catalog`). Needs the ``geo`` extra (pyucalgarysrs, aacgmv2,
xarray); import the modules themselves.
"""
