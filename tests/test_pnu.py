"""The PNU risk identities (sigmoid loss), the eta heuristic and the prior estimator."""

import numpy as np
import pytest
import torch

from arcscan.core.pnu import PNURisk, estimate_prior, heuristic_eta, sigmoid_loss


@pytest.fixture
def scores():
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(n, generator=generator) * 3 + shift for n, shift in ((16, 1.0), (16, -1.0), (64, 0.0)))


def risks(g_p, g_n, g_u, pi):
    """The textbook risks, written out independently of arcscan.core.pnu."""
    l = lambda m: torch.sigmoid(-m).mean()  # noqa: E731
    r_pn = pi * l(g_p) + (1 - pi) * l(-g_n)
    r_pu = pi * l(g_p) - pi * l(-g_p) + l(-g_u)
    r_nu = (1 - pi) * l(-g_n) - (1 - pi) * l(g_n) + l(g_u)
    return r_pn, r_pu, r_nu


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.6])
def test_eta_zero_is_the_pn_risk(scores, pi):
    r_pn, _, _ = risks(*scores, pi)
    terms = PNURisk(pi, eta=0.0)(*scores)
    assert torch.allclose(terms.objective, r_pn) and torch.allclose(terms.risk, r_pn)


@pytest.mark.parametrize("pi", [0.1, 0.3, 0.6])
def test_eta_one_is_nnpu(scores, pi):
    g_p, g_n, g_u = scores
    terms = PNURisk(pi, eta=1.0)(*scores)
    negative_part = torch.sigmoid(g_u).mean() - pi * torch.sigmoid(g_p).mean()  # R_U^- - pi R_P^-
    expected = pi * torch.sigmoid(-g_p).mean() + torch.clamp(negative_part, min=0)
    assert torch.allclose(terms.risk, expected)


def test_nnpu_steps_on_minus_gamma_bracket_when_negative():
    # Unlabeled all scored negative while positives score positive: an overfit net whose
    # estimate of the negative-class risk, R_U^- - pi R_P^-, has gone below zero.
    g_p = torch.full((8,), 6.0, requires_grad=True)
    g_n = torch.zeros(8, requires_grad=True)
    g_u = torch.full((32,), -6.0, requires_grad=True)
    pi, gamma = 0.5, 0.7
    terms = PNURisk(pi, eta=1.0, gamma=gamma)(g_p, g_n, g_u)
    bracket = torch.sigmoid(g_u).mean() - pi * torch.sigmoid(g_p).mean()
    assert terms.clipped and bracket.item() < 0
    assert torch.allclose(terms.objective, -gamma * bracket)
    assert terms.risk.item() == pytest.approx((pi * torch.sigmoid(-g_p).mean()).item())  # clipped at 0


@pytest.mark.parametrize("pi", [0.2, 0.5])
def test_unbiased_pu_risk_sigmoid_identity(scores, pi):
    """With l(m) + l(-m) = 1: R_PU = 2 pi R_P^+ + R_U^- - pi."""
    g_p, g_n, g_u = scores
    terms = PNURisk(pi, eta=1.0, nonnegative=False)(*scores)
    identity = 2 * pi * sigmoid_loss(g_p).mean() + sigmoid_loss(-g_u).mean() - pi
    assert torch.allclose(terms.objective, identity, atol=1e-6)
    assert torch.allclose(terms.objective, risks(*scores, pi)[1], atol=1e-6)


@pytest.mark.parametrize("eta", [-1.0, -0.4, 0.3, 0.8])
def test_unbiased_pnu_is_the_eta_mixture(scores, eta):
    pi = 0.3
    r_pn, r_pu, r_nu = risks(*scores, pi)
    expected = (1 - eta) * r_pn + eta * r_pu if eta >= 0 else (1 + eta) * r_pn - eta * r_nu
    assert torch.allclose(PNURisk(pi, eta, nonnegative=False)(*scores).objective, expected, atol=1e-6)


def test_sigmoid_loss_symmetry():
    m = torch.linspace(-10, 10, 101)
    assert torch.allclose(sigmoid_loss(m) + sigmoid_loss(-m), torch.ones_like(m))


def test_gradients_flow_through_the_objective(scores):
    g_p, g_n, g_u = (s.clone().requires_grad_() for s in scores)
    PNURisk(0.3, 0.5)(g_p, g_n, g_u).objective.backward()
    assert all(g.grad is not None and torch.isfinite(g.grad).all() for g in (g_p, g_n, g_u))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        PNURisk(0.0, 0.5)
    with pytest.raises(ValueError):
        PNURisk(0.3, 1.5)


def test_heuristic_eta():
    # Equal counts: psi_N > psi_P when pi < 1/2, so eta leans towards PU (positive).
    assert heuristic_eta(0.2, 100, 100) == pytest.approx((0.64 - 0.04) / (0.64 + 0.04))
    assert heuristic_eta(0.5, 100, 100) == pytest.approx(0.0)
    assert heuristic_eta(0.8, 100, 100) < 0


@pytest.mark.parametrize("true_prior", [0.1, 0.3, 0.7])
def test_energy_distance_prior_recovers_a_mixture(true_prior):
    rng = np.random.default_rng(1)
    positive = rng.normal(2.0, 1.0, (300, 5))
    negative = rng.normal(-1.0, 1.0, (300, 5))
    n_u = 2000
    n_pos = int(true_prior * n_u)
    unlabeled = np.concatenate([rng.normal(2.0, 1.0, (n_pos, 5)), rng.normal(-1.0, 1.0, (n_u - n_pos, 5))])
    assert estimate_prior(positive, negative, unlabeled) == pytest.approx(true_prior, abs=0.04)


def test_positive_weight_reweighs_the_class_conditional_risks(scores):
    """w R_+ + (1 - w) R_-, each class risk estimated as in PN (eta=0) or from U and P (eta=1)."""
    g_p, g_n, g_u = scores
    pi, w = 0.1, 0.5
    l = lambda m: torch.sigmoid(-m).mean()  # noqa: E731
    pn = PNURisk(pi, 0.0, positive_weight=w)(*scores).objective
    assert torch.allclose(pn, w * l(g_p) + (1 - w) * l(-g_n))
    pu = PNURisk(pi, 1.0, positive_weight=w, nonnegative=False)(*scores).objective
    assert torch.allclose(pu, w * l(g_p) + (1 - w) / (1 - pi) * (l(-g_u) - pi * l(-g_p)), atol=1e-6)
    nu = PNURisk(pi, -1.0, positive_weight=w, nonnegative=False)(*scores).objective
    assert torch.allclose(nu, (1 - w) * l(-g_n) + w / pi * (l(g_u) - (1 - pi) * l(g_n)), atol=1e-6)
    default = PNURisk(pi, 0.7)(*scores).objective
    assert torch.allclose(default, PNURisk(pi, 0.7, positive_weight=pi)(*scores).objective)


def test_training_with_a_tiny_prior_and_the_paper_weighting_collapses_but_balanced_does_not():
    """Documents why params.yaml sets positive_weight 0.5: with pi = 0.05 the misclassification
    risk is minimised by calling (almost) everything negative."""
    g_u = torch.full((64,), -8.0)  # "all negative"
    g_p, g_n = torch.full((16,), -8.0), torch.full((16,), -8.0)
    collapsed_paper = PNURisk(0.05, 1.0)(g_p, g_n, g_u).risk.item()
    collapsed_balanced = PNURisk(0.05, 1.0, positive_weight=0.5)(g_p, g_n, g_u).risk.item()
    assert collapsed_paper == pytest.approx(0.05, abs=1e-3)  # = pi: cheap
    assert collapsed_balanced == pytest.approx(0.5, abs=1e-3)  # = w: expensive
