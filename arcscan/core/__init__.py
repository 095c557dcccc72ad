"""The method: normalisation, patch sets, the ResNet18 patch classifier, the PNU risk and its
training loop, the raster scan + dense CRF segmenter, metrics, the synthetic sky generator and
pictures. Everything else in arcscan imports this room; it imports only :mod:`arcscan.io` and
the numerical stack (numpy, scipy, scikit-image, torch, torchvision, pydensecrf)."""
