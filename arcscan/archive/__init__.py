"""Reprocessing the archive on Ray: the walk and filters (:mod:`~arcscan.archive.walk`), the
catalog's rows (:mod:`~arcscan.archive.catalog`), per-file atomic commits and resume
(:mod:`~arcscan.archive.manifest`) and the Ray Data job (:mod:`~arcscan.archive.pipeline`);
``arcscan reprocess`` (:mod:`~arcscan.archive.cli`). Needs the ``[archive]`` extra."""
