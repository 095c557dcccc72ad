"""The PNU training loop: fixed-count P, N and U draws per step, the non-negative risk, Adam.

One "epoch" is one pass over the unlabeled set (ceil(n_U / batch_u) steps); positives and
negatives are drawn in every step from their own shuffled streams, so no step lacks either
class even with ~100 labelled patches each. PN (eta=0) and nnPU (eta=1) are this same loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from arcscan.core.augment import AugmentConfig, augment
from arcscan.core.model import ModelConfig, build_model, pick_device
from arcscan.core.patches import NEGATIVE, POSITIVE, UNLABELED, PatchSet
from arcscan.core.pnu import PNURisk, estimate_prior, heuristic_eta
from arcscan.core.progress import progress


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run (``train`` section of params.yaml)."""

    epochs: int = 15
    batch_p: int = 16
    batch_n: int = 16
    batch_u: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # learning rate: "cosine" (annealed to 0 over the run) or "constant"
    eta: float | str = 0.5  # a number in [-1, 1], or "heuristic" (Sakai et al.)
    prior: float | str = 0.05  # a number in (0, 1), or "auto" (energy-distance estimate)
    beta: float = 0.0
    gamma: float = 1.0
    positive_weight: float | None = 0.5  # 0.5: balanced error; None: pi (misclassification risk)
    seed: int = 0
    threads: int = 2  # torch threads; 0: leave torch's default
    device: str = "auto"


@dataclass
class TrainResult:
    model: torch.nn.Module
    prior: float
    eta: float
    history: list[dict]
    seconds: float


def resolve_prior_and_eta(patches: PatchSet, config: TrainConfig) -> tuple[float, float]:
    """The class prior (given, or estimated from 8x8-downsampled patches) and eta (given, or
    the heuristic from the prior and the labelled counts)."""
    pos, neg, unl = (patches.images[patches.labels == c] for c in (POSITIVE, NEGATIVE, UNLABELED))
    if config.prior == "auto":
        features = [x.reshape(len(x), 8, x.shape[1] // 8, 8, x.shape[2] // 8).mean((2, 4)).reshape(len(x), -1) for x in (pos, neg, unl)]
        prior = estimate_prior(*features)
    else:
        prior = float(config.prior)
    eta = heuristic_eta(prior, len(pos), len(neg)) if config.eta == "heuristic" else float(config.eta)
    return prior, eta


def _draws(n: int, batch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of indices into n items: reshuffled whenever a pass is used up."""
    order, position = torch.randperm(n, generator=generator), 0
    while True:
        if position + batch > n:
            order, position = torch.randperm(n, generator=generator), 0
        yield order[position : position + min(batch, n)]
        position += batch


def train_pnu(
    patches: PatchSet,
    config: TrainConfig = TrainConfig(),
    model_config: ModelConfig = ModelConfig(),
    augment_config: AugmentConfig = AugmentConfig(),
    on_epoch: Callable[[dict], None] | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train a ResNet18 arc classifier on P, N and U patches with the non-negative PNU risk;
    a progress bar over the steps shows the epoch's running risk terms."""
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    device = pick_device(config.device)
    prior, eta = resolve_prior_and_eta(patches, config)

    images = torch.from_numpy(patches.images).unsqueeze(1)
    pos, neg, unl = (images[torch.from_numpy(patches.labels == c)] for c in (POSITIVE, NEGATIVE, UNLABELED))
    draw_p, draw_n, draw_u = (_draws(len(x), b, generator) for x, b in ((pos, config.batch_p), (neg, config.batch_n), (unl, config.batch_u)))
    steps_per_epoch = math.ceil(len(unl) / config.batch_u)

    model = build_model(model_config).to(device)
    risk = PNURisk(prior, eta, config.beta, config.gamma, positive_weight=config.positive_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedules = {
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs * steps_per_epoch),
        "constant": lambda: torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0),
    }
    if config.schedule not in schedules:
        raise ValueError(f"train.schedule must be one of {sorted(schedules)}, got {config.schedule!r}")
    scheduler = schedules[config.schedule]()
    history: list[dict] = []
    start = time.perf_counter()
    bar = progress(desc="train", total=config.epochs * steps_per_epoch, unit="step", enabled=show_progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        totals = {"risk": 0.0, "objective": 0.0, "pn": 0.0, "clipped": 0.0}
        for _ in range(steps_per_epoch):
            xp, xn, xu = pos[next(draw_p)], neg[next(draw_n)], unl[next(draw_u)]
            batch = augment(torch.cat([xp, xn, xu]), augment_config, generator)
            scores = model(batch.to(device)).squeeze(1)
            g_p, g_n, g_u = scores.split([len(xp), len(xn), len(xu)])
            terms = risk(g_p, g_n, g_u)
            optimizer.zero_grad(set_to_none=True)
            terms.objective.backward()
            optimizer.step()
            scheduler.step()
            totals["risk"] += terms.risk.item()
            totals["objective"] += terms.objective.item()
            totals["pn"] += terms.pn.item()
            totals["clipped"] += float(terms.clipped)
            bar.update()
        record = {"epoch": epoch, **{k: v / steps_per_epoch for k, v in totals.items()}, "seconds": time.perf_counter() - start}
        history.append(record)
        bar.set_postfix(epoch=epoch, risk=f"{record['risk']:.4f}", pn=f"{record['pn']:.4f}", clipped=f"{record['clipped']:.2f}")
        if on_epoch:
            on_epoch(record)
    bar.close()
    return TrainResult(model.eval(), prior, eta, history, time.perf_counter() - start)


@torch.inference_mode()
def predict_scores(model: torch.nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits of a model for (n, s, s) patches (batched, on the model's device)."""
    device = next(model.parameters()).device
    model.eval()
    out = [model(torch.from_numpy(images[i : i + batch_size]).unsqueeze(1).to(device)).squeeze(1).cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)
