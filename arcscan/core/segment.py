"""From a frame to an arc mask: sky and model scale, raster scan of patches, dense CRF, arc objects.

Each frame's sky is found (:mod:`arcscan.core.geometry`) and the frame normalised and
resampled to the model's scale (:func:`arcscan.core.preprocess.model_view`); the scan and the
CRF run there, and the probability map and mask are brought back to the frame's own pixels.

The raster scan scores the patch centred on each pixel of a grid (stride ``s``, zero padding
of half a patch beyond the edge, only where the sky disc can be reached) in batched forward
passes, then bilinearly interpolates the grid of logits back to every pixel. Stride 1 is the
authors' reference (every pixel classified by its own patch); larger strides are the fast path.
The dense CRF (Krähenbühl & Koltun, via pydensecrf2) then snaps the probability map to the
intensity edges.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydensecrf import densecrf
from pydensecrf.utils import unary_from_softmax
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import gaussian_filter, maximum_filter
from skimage.measure import label, regionprops
from skimage.morphology import skeletonize

from arcscan.errors import InputError
from arcscan.core.geometry import Sky, SkyConfig, SkyFinder, to_shape
from arcscan.core.model import Checkpoint
from arcscan.io.frames import Frame
from arcscan.core.preprocess import ModelView, PreprocessConfig, model_view

if TYPE_CHECKING:
    from arcscan.geo.arcs import ArcGeo

_OUTSIDE_LOGIT = -20.0  # score given where no patch was scored (beyond the sky disc)
GUIDE_NOISE_SCALE = 4.0  # px: the local mean the CRF guide's noise is measured against (wider than its smoothing)


@dataclass(frozen=True)
class ScanConfig:
    """Raster scan: patch size (the trained model's; set by ``patches.size``), grid stride
    (1 = reference), patches per forward pass."""

    patch_size: int = 32
    stride: int = 8
    batch_size: int = 256


@dataclass(frozen=True)
class ObjectConfig:
    """Arc objects: connected mask regions smaller than ``min_area`` pixels (at the model's
    scale) are dropped."""

    min_area: int = 20


@dataclass(frozen=True)
class CRFConfig:
    """Dense CRF: unary from probabilities capped at ``gt_prob`` confidence; a Gaussian
    smoothness kernel and a bilateral (position + intensity) appearance kernel. The bilateral
    kernel compares the intensities of a guide (:func:`crf_guide`: the frame smoothed by
    ``guide_sigma`` px) on the scale of ``bilateral_srgb_noise`` noise sigmas of that guide, so
    that a faint arc, a few noise sigmas above its sky, is as distinct as a bright one."""

    enabled: bool = True
    gt_prob: float = 0.8
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb_noise: float = 2.0
    bilateral_compat: float = 10.0
    guide_sigma: float = 1.0
    iterations: int = 5


@dataclass(frozen=True)
class ArcObject:
    """One connected arc region of a mask (pixels; orientation in degrees counter-clockwise
    from the image x axis as the frame is displayed, y down; 0 is an east-west band), and its
    physical figures (``geo``) when the imager's pixel geometry is known."""

    area: int
    length: float
    mean_width: float
    orientation_deg: float
    centroid_x: float
    centroid_y: float
    mean_intensity: float
    geo: ArcGeo | None = None


@dataclass
class Segmentation:
    """Everything the segmentation of one frame produced."""

    image01: np.ndarray  # the normalised frame (zero outside the sky), the frame's own pixels
    sky: np.ndarray  # the pixels of the frame that are sky
    probability: np.ndarray  # per-pixel arc probability from the scan
    mask_scan: np.ndarray  # probability > 0.5 inside the sky
    mask: np.ndarray  # final mask (after the CRF when enabled), inside the sky
    scale: float = 1.0  # the resampling of the frame to the model's scale
    sky_source: str = ""  # where the sky came from (an imager profile, estimated, inscribed)
    objects: list[ArcObject] = field(default_factory=list)
    arc_fraction: float = 0.0
    scan_ms: float = 0.0
    crf_ms: float = 0.0


def frame_record(frame: Frame, result: Segmentation) -> dict:
    """The answer for one segmented frame, in the one shape that the TorchServe handler
    returns, the stream client records and ``arcscan segment`` writes (JSON-ready)."""
    return {
        "index": frame.index,
        "timestamp": frame.timestamp.isoformat() if frame.timestamp else None,
        "site": frame.site,
        "imager": frame.imager,
        "arc_fraction": result.arc_fraction,
        "sky": result.sky_source,
        "objects": [asdict(o) for o in result.objects],
        "scan_ms": round(result.scan_ms, 2),
        "crf_ms": round(result.crf_ms, 2),
    }


def _grid(n: int, stride: int) -> np.ndarray:
    """Centres 0, s, 2s, ... plus the last pixel, so interpolation covers the whole frame."""
    points = np.arange(0, n, stride)
    return points if points[-1] == n - 1 else np.append(points, n - 1)


def scan_grid(shape: tuple[int, int], fov: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid rows, columns and which grid points need a patch score (those from which the sky
    disc can be reached: the disc widened by the stride)."""
    ys, xs = _grid(shape[0], stride), _grid(shape[1], stride)
    reach = fov if stride == 1 else maximum_filter(fov, size=2 * stride + 1)
    return ys, xs, reach[np.ix_(ys, xs)]


def patch_windows(image01: np.ndarray, patch_size: int) -> torch.Tensor:
    """A view of every patch of a frame, ``windows[y, x]`` centred on pixel (y, x) (zero
    padding of half a patch beyond the edge)."""
    half = patch_size // 2
    padded = torch.nn.functional.pad(torch.from_numpy(image01), (half, half, half, half))
    return padded.unfold(0, patch_size, 1).unfold(1, patch_size, 1)


def grid_patches(windows: torch.Tensor, ys: np.ndarray, xs: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> torch.Tensor:
    """The patches (n, 1, size, size) of :func:`patch_windows` centred on the points
    (``gy``, ``gx``) of the grid ``ys`` x ``xs``."""
    return windows[torch.from_numpy(ys[gy]), torch.from_numpy(xs[gx])].unsqueeze(1)


def grid_to_pixels(ys: np.ndarray, xs: np.ndarray, grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel logits bilinearly interpolated from a grid of logits."""
    if len(ys) == shape[0] and len(xs) == shape[1]:
        return grid
    interpolate = RegularGridInterpolator((ys, xs), grid, method="linear")
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return interpolate(np.stack([yy.ravel(), xx.ravel()], axis=1)).reshape(shape).astype(np.float32)


@torch.inference_mode()
def scan_logits(model: torch.nn.Module, image01: np.ndarray, fov: np.ndarray, config: ScanConfig) -> np.ndarray:
    """Per-pixel logits of the patch classifier over a normalised frame (see module doc)."""
    ys, xs, needed = scan_grid(image01.shape, fov, config.stride)
    gy, gx = np.nonzero(needed)
    windows = patch_windows(image01, config.patch_size)
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(gy), config.batch_size):
        batch = grid_patches(windows, ys, xs, gy[start : start + config.batch_size], gx[start : start + config.batch_size])
        batch = batch.to(device).contiguous(memory_format=torch.channels_last)
        scores.append(model(batch).squeeze(1).float().cpu())
    grid = np.full((len(ys), len(xs)), _OUTSIDE_LOGIT, np.float32)
    if scores:
        grid[gy, gx] = torch.cat(scores).numpy()
    return grid_to_pixels(ys, xs, grid, image01.shape)


def crf_guide(image01: np.ndarray, sky: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
    """The intensities the CRF's bilateral kernel compares: ``image01`` smoothed by a Gaussian
    of ``sigma`` px (pixel noise down, arcs kept), and that guide's noise: 1.4826 x the median
    absolute deviation from its local mean (a Gaussian of ``GUIDE_NOISE_SCALE`` px) within ``sky``."""
    guide = (gaussian_filter(image01, sigma) if sigma > 0 else image01) * sky
    residual = (guide - gaussian_filter(guide, GUIDE_NOISE_SCALE))[sky]
    return guide.astype(np.float32), float(1.4826 * np.median(np.abs(residual))) if residual.size else 0.0


def dense_crf(probability: np.ndarray, image01: np.ndarray, config: CRFConfig, sky: np.ndarray | None = None) -> np.ndarray:
    """Refined arc mask: mean-field inference of a two-label fully connected CRF (its
    intensities from :func:`crf_guide` within ``sky``, the whole frame by default)."""
    height, width = probability.shape
    sky = np.ones(probability.shape, bool) if sky is None else sky
    capped = np.clip(probability, 1.0 - config.gt_prob, config.gt_prob).astype(np.float32)
    crf = densecrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1.0 - capped, capped]))))
    crf.addPairwiseGaussian(sxy=config.gauss_sxy, compat=config.gauss_compat)
    guide, noise = crf_guide(image01, sky, config.guide_sigma)
    intensity = np.ascontiguousarray(np.repeat((np.clip(guide, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2))
    srgb = max(config.bilateral_srgb_noise * noise * 255, 1.0)  # in grey levels; at least one
    crf.addPairwiseBilateral(sxy=config.bilateral_sxy, srgb=srgb, rgbim=intensity, compat=config.bilateral_compat)
    q = np.asarray(crf.inference(config.iterations)).reshape(2, height, width)
    return q[1] > q[0]


def arc_objects(
    mask: np.ndarray, image01: np.ndarray, min_area: int = 20, physical: Callable[[np.ndarray, np.ndarray], ArcGeo | None] | None = None
) -> list[ArcObject]:
    """Connected components of a mask (8-connected) with their shape and brightness; regions
    smaller than ``min_area`` pixels are dropped. Length is the skeleton's pixel count.
    ``physical(rows, cols)`` measures a region on the emission shell (:meth:`SkyFinder.arc_measure`)."""
    objects = []
    for region in regionprops(label(mask, connectivity=2), intensity_image=image01):
        if region.area < min_area:
            continue
        length = max(float(skeletonize(region.image).sum()), 1.0)
        angle = np.degrees(region.orientation - np.pi / 2)  # counter-clockwise as displayed (y down)
        objects.append(
            ArcObject(
                area=int(region.area),
                length=length,
                mean_width=float(region.area) / length,
                orientation_deg=float((angle + 90) % 180 - 90),
                centroid_x=float(region.centroid[1]),
                centroid_y=float(region.centroid[0]),
                mean_intensity=float(region.intensity_mean),
                geo=physical(region.coords[:, 0], region.coords[:, 1]) if physical else None,
            )
        )
    return objects


class Segmenter:
    """A trained patch classifier plus the settings that turn frames into arc masks."""

    def __init__(
        self,
        model: torch.nn.Module,
        preprocess: PreprocessConfig = PreprocessConfig(),
        scan: ScanConfig = ScanConfig(),
        crf: CRFConfig = CRFConfig(),
        objects: ObjectConfig = ObjectConfig(),
        sky: SkyConfig = SkyConfig(),
    ) -> None:
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.preprocess, self.scan, self.crf, self.objects = preprocess, scan, crf, objects
        self.find_sky = SkyFinder(sky)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Checkpoint, scan: ScanConfig, crf: CRFConfig, objects: ObjectConfig, sky: SkyConfig = SkyConfig(), preprocess: PreprocessConfig | None = None
    ) -> "Segmenter":
        """A segmenter for a trained model: its own normalisation and scale (``preprocess``
        only for a checkpoint that does not record them), and the scan refused (InputError)
        unless its patch size is the one the model was trained on."""
        trained = checkpoint.model_args.patch_size
        if scan.patch_size != trained:
            raise InputError(f"scan patch size {scan.patch_size} differs from the {trained} px patches the model was trained on (patches.size)")
        preprocess = checkpoint.preprocess or preprocess
        if preprocess is None:
            raise InputError("the checkpoint records no normalisation settings: give the preprocess section")
        return cls(checkpoint.model, preprocess, scan, crf, objects, sky)

    def sky_of(self, frame: Frame) -> Sky:
        """The frame's sky; InputError for a frame it cannot be placed on (its imager
        profile's elevation map has another size; an estimated sky always exists)."""
        return self.find_sky(frame.image, frame.site, frame.imager, f"{frame.source or 'input'}: frame {frame.index}")

    def __call__(self, frame: Frame, sky: Sky | None = None) -> Segmentation:
        """Segment a frame (on ``sky`` when the caller has it from :meth:`sky_of`)."""
        return self.finish(frame, *self.scan_frame(frame, sky))

    def scan_frame(self, frame: Frame, sky: Sky | None = None) -> tuple[ModelView, np.ndarray, float]:
        """The first half of :meth:`__call__`: the frame's model view, its scan's arc
        probability map (model scale) and the scan's milliseconds."""
        view = model_view(frame, self.sky_of(frame) if sky is None else sky, self.preprocess)
        start = time.perf_counter()
        probability = 1.0 / (1.0 + np.exp(-scan_logits(self.model, view.model01, view.model_sky, self.scan)))
        return view, probability, (time.perf_counter() - start) * 1000

    def min_area_at(self, scale: float) -> int:
        """The smallest arc object (``objects.min_area``, model pixels) in the pixels of a frame
        resampled by ``scale`` to the model's."""
        return max(1, int(round(self.objects.min_area / scale**2)))

    def finish(self, frame: Frame, view: ModelView, probability: np.ndarray, scan_ms: float, crf: bool = True) -> Segmentation:
        """The segmentation of a frame from its scan's probability map at the model's scale:
        the CRF (unless disabled, or ``crf`` is False: the scan's mask is final), the mask and
        probability in the frame's pixels, the arc objects."""
        sky = view.sky
        crf = crf and self.crf.enabled
        start = time.perf_counter()
        mask = dense_crf(probability, view.model01, self.crf, view.model_sky) if crf else probability > 0.5
        crf_ms = (time.perf_counter() - start) * 1000 if crf else 0.0
        shape = frame.image.shape
        probability = to_shape(probability.astype(np.float32), shape)
        mask_scan = (probability > 0.5) & sky.mask
        mask = (to_shape(mask.astype(np.float32), shape) > 0.5) & sky.mask if view.scale != 1.0 else mask & sky.mask
        return Segmentation(
            image01=view.image01,
            sky=sky.mask,
            probability=probability,
            mask_scan=mask_scan,
            mask=mask,
            scale=view.scale,
            sky_source=sky.source,
            objects=arc_objects(mask, view.image01, self.min_area_at(view.scale), self.find_sky.arc_measure(frame.site, frame.imager, shape, frame.timestamp)),
            arc_fraction=float(mask.sum() / sky.mask.sum()),
            scan_ms=scan_ms,
            crf_ms=crf_ms,
        )
