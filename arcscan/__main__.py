"""``python -m arcscan`` is the ``arcscan`` command."""

from arcscan.cli import main

main()
