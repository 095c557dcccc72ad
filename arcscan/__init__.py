"""arcscan: discrete auroral arc segmentation in all-sky imager frames."""
