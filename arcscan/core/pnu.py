r"""PNU learning: the non-negative positive-negative-unlabeled risk, and its helpers.

Notation: :math:`\pi = p(y=+1)` among unlabeled (and test) patches, :math:`g(x)` the score,
:math:`\ell(m) = \mathrm{sigmoid}(-m)` the sigmoid loss of a margin, and
:math:`R_P^\pm = E_P[\ell(\pm g)]`, likewise :math:`R_N^\pm, R_U^\pm`.

- PN:  :math:`R_{PN} = \pi R_P^+ + (1-\pi) R_N^-`
- PU:  :math:`R_{PU} = \pi R_P^+ + (R_U^- - \pi R_P^-)`
- NU:  :math:`R_{NU} = (1-\pi) R_N^- + (R_U^+ - (1-\pi) R_N^+)`
- PNU (Sakai et al., ICML 2017): :math:`R = (1-\eta) R_{PN} + \eta R_{PU}` for
  :math:`\eta \in [0, 1]`, :math:`R = (1+\eta) R_{PN} - \eta R_{NU}` for :math:`\eta < 0`.
  :math:`\eta = 0` is PN, :math:`\eta = 1` PU, :math:`\eta = -1` NU.
- Non-negative correction (Kiryo et al., NeurIPS 2017): the bracketed term estimates the risk
  of the *other* class from unlabeled data and can go below zero when a deep net overfits.
  The reported risk clips it at zero; when it falls below :math:`-\beta`, the training
  objective steps on :math:`-\gamma \times` the bracket instead (for that part only), which
  for :math:`\eta = 1` is exactly nnPU.

With the sigmoid loss :math:`\ell(m) + \ell(-m) = 1`, hence
:math:`R_{PU} = 2\pi R_P^+ + R_U^- - \pi` (a unit test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def sigmoid_loss(margin: torch.Tensor) -> torch.Tensor:
    """:math:`\\ell(m) = \\mathrm{sigmoid}(-m)`, bounded and symmetric: ell(m)+ell(-m)=1."""
    return torch.sigmoid(-margin)


@dataclass
class RiskTerms:
    """What one evaluation of the risk gives: the objective to backpropagate and the parts."""

    objective: torch.Tensor
    risk: torch.Tensor
    pn: torch.Tensor
    unlabeled_part: torch.Tensor
    clipped: bool


class PNURisk(nn.Module):
    """Non-negative PNU risk with the sigmoid loss (see the module docstring for the maths).

    Args:
        prior: class prior pi in (0, 1).
        eta: mixing weight in [-1, 1]; 0 gives PN, 1 nnPU, -1 nnNU.
        beta, gamma: the non-negative correction's threshold and step scale (Kiryo et al.).
        nonnegative: False gives the unbiased (uncorrected) PNU risk.
        positive_weight: w, the weight of the positive class in the risk being estimated,
            R_w = w R_+ + (1 - w) R_-. None means w = pi: the misclassification rate of the
            formulas above. w = 0.5 is the balanced error, which suits a rare class (arcs
            cover a few percent of the sky): each class-conditional risk is estimated as in
            PN/PU/NU (e.g. R_- from U and P as (R_U^- - pi R_P^-) / (1 - pi)) and weighted
            by w and 1 - w instead of pi and 1 - pi.
    """

    def __init__(
        self,
        prior: float,
        eta: float,
        beta: float = 0.0,
        gamma: float = 1.0,
        nonnegative: bool = True,
        positive_weight: float | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < prior < 1.0:
            raise ValueError(f"class prior must be in (0, 1), got {prior}")
        if not -1.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [-1, 1], got {eta}")
        weight = prior if positive_weight is None else positive_weight
        if not 0.0 < weight < 1.0:
            raise ValueError(f"positive_weight must be in (0, 1), got {weight}")
        self.prior, self.eta, self.beta, self.gamma = prior, eta, beta, gamma
        self.nonnegative = nonnegative
        self.positive_weight = weight

    def forward(self, g_p: torch.Tensor, g_n: torch.Tensor, g_u: torch.Tensor) -> RiskTerms:
        pi, eta, w = self.prior, self.eta, self.positive_weight
        r_p_pos, r_n_neg = sigmoid_loss(g_p).mean(), sigmoid_loss(-g_n).mean()
        pn = w * r_p_pos + (1 - w) * r_n_neg
        if eta >= 0:  # PU part: the negative-class risk estimated from U and P
            labelled = w * r_p_pos
            scale = (1 - w) / (1 - pi)
            bracket = scale * (sigmoid_loss(-g_u).mean() - pi * sigmoid_loss(-g_p).mean())
        else:  # NU part: the positive-class risk estimated from U and N
            labelled = (1 - w) * r_n_neg
            scale = w / pi
            bracket = scale * (sigmoid_loss(g_u).mean() - (1 - pi) * sigmoid_loss(g_n).mean())
        mix = abs(eta)
        if not self.nonnegative:
            risk = (1 - mix) * pn + mix * (labelled + bracket)
            return RiskTerms(risk, risk.detach(), pn.detach(), bracket.detach(), False)
        risk = (1 - mix) * pn + mix * (labelled + torch.clamp(bracket, min=0.0))
        clipped = mix > 0 and bracket.item() < -self.beta * scale
        if clipped:
            objective = (1 - mix) * pn - mix * self.gamma * bracket
        else:
            objective = (1 - mix) * pn + mix * (labelled + bracket)
        return RiskTerms(objective, risk.detach(), pn.detach(), bracket.detach(), clipped)


def heuristic_eta(prior: float, n_positive: int, n_negative: int) -> float:
    """Sakai et al.'s choice: psi_P = pi^2/n_P, psi_N = (1-pi)^2/n_N,
    eta = (psi_N - psi_P) / (psi_N + psi_P)."""
    psi_p = prior**2 / n_positive
    psi_n = (1 - prior) ** 2 / n_negative
    return (psi_n - psi_p) / (psi_n + psi_p)


def estimate_prior(positive: np.ndarray, negative: np.ndarray, unlabeled: np.ndarray) -> float:
    """Class prior of the unlabeled set by energy-distance matching (Kawakubo et al. 2016).

    Finds theta minimising the energy distance between U and theta P + (1-theta) N; with
    D_AB the mean Euclidean distance between samples of A and B, the minimiser is
    theta = (D_NU - D_PU + D_PN - D_NN) / (2 D_PN - D_PP - D_NN), clipped to [0.01, 0.99].
    Inputs are (n, d) feature arrays (e.g. flattened, downsampled patches).
    """

    def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        squared = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2 * a64 @ b64.T
        return float(np.sqrt(np.clip(squared, 0, None)).mean())

    d_pp, d_nn, d_pn = mean_distance(positive, positive), mean_distance(negative, negative), mean_distance(positive, negative)
    d_pu, d_nu = mean_distance(positive, unlabeled), mean_distance(negative, unlabeled)
    theta = (d_nu - d_pu + d_pn - d_nn) / (2 * d_pn - d_pp - d_nn)
    return float(np.clip(theta, 0.01, 0.99))
