"""StyleGAN2 loss terms against closed forms on tiny linear networks, finite differences
and hand-computed schedule constants (independent of the implementation under test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylefa.train.loop import ema_beta, make_optimizer, update_ema_
from stylefa.train.loss import StyleGAN2Loss
from stylefa.train.options import LossConfig, OptimConfig

Z, W, NUM_WS, R = 3, 2, 3, 4


class LinearMapping(torch.nn.Module):
    """w = M z, broadcast to every layer; counts calls that update the EMA."""

    def __init__(self):
        super().__init__()
        self.M = torch.nn.Parameter(torch.randn(W, Z, dtype=torch.float64))
        self.ema_updates = 0

    def forward(self, z, c, truncation_psi=1.0, truncation_cutoff=None, update_emas=False):
        self.ema_updates += int(update_emas)
        return (z @ self.M.T).unsqueeze(1).repeat(1, NUM_WS, 1)


class LinearSynthesis(torch.nn.Module):
    """img = sum_l A_l w_l: the Jacobian d img / d w_l is A_l, so path lengths are closed form."""

    def __init__(self):
        super().__init__()
        self.A = torch.nn.Parameter(torch.randn(NUM_WS, R * R, W, dtype=torch.float64) * 0.5)

    def forward(self, ws, noise_mode="random"):
        img = torch.einsum("lpw,nlw->np", self.A, ws)
        return img.view(-1, 1, R, R)


class LinearG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping = LinearMapping()
        self.synthesis = LinearSynthesis()
        self.z_dim, self.num_ws = Z, NUM_WS


class LinearD(torch.nn.Module):
    """logit = v . x + b: d logit / d x = v for every sample."""

    def __init__(self):
        super().__init__()
        self.v = torch.nn.Parameter(torch.randn(R * R, dtype=torch.float64) * 0.3)
        self.b = torch.nn.Parameter(torch.tensor(0.1, dtype=torch.float64))

    def forward(self, img, c):
        return (img.flatten(1) @ self.v + self.b).unsqueeze(1)


class TanhD(torch.nn.Module):
    """A nonlinear D for the R1 check (float64 so finite differences are accurate)."""

    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(R * R, 5).double()
        self.l2 = torch.nn.Linear(5, 1).double()

    def forward(self, img, c):
        return self.l2(torch.tanh(self.l1(img.flatten(1))))


def np_softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def make(config: LossConfig, D_class=None, seed=0):
    torch.manual_seed(seed)
    G, D = LinearG(), (D_class or LinearD)()
    G.requires_grad_(False)
    D.requires_grad_(False)
    loss = StyleGAN2Loss(G, D, config, rng=torch.Generator().manual_seed(123))
    return G, D, loss


def collect():
    store = {}

    def report(name, value):
        store.setdefault(name, []).append(value.detach().clone())

    return store, report


NO_MIX = LossConfig(style_mixing_prob=0.0, r1_gamma=0.7)


def inputs(n=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 1, R, R, generator=g, dtype=torch.float64),
        torch.zeros(n, 0),
        torch.randn(n, Z, generator=g, dtype=torch.float64),
        torch.zeros(n, 0),
    )


def test_g_main_is_non_saturating_logistic_loss():
    G, D, loss = make(NO_MIX)
    real, c, z, gc = inputs()
    G.requires_grad_(True)
    store, report = collect()
    loss.accumulate_gradients("Gmain", real, c, z, gc, gain=1.0, stats=report)

    M, A, v, b = (t.detach().numpy() for t in (G.mapping.M, G.synthesis.A, D.v, D.b))
    w = z.numpy() @ M.T  # [N, W]
    img = np.einsum("lpw,nw->np", A, w)
    logits = img @ v + b
    # -log(sigmoid(l)) == softplus(-l)
    expected_loss = -np.log(np_sigmoid(logits))
    np.testing.assert_allclose(store["Loss/G/loss"][0].numpy().ravel(), expected_loss, rtol=1e-10)
    # d/dA_l mean_i softplus(-l_i) = mean_i -sigmoid(-l_i) v w_i^T
    coef = -np_sigmoid(-logits) / len(logits)
    grad_A = np.einsum("n,p,nw->pw", coef, v, w)
    for layer in range(NUM_WS):
        np.testing.assert_allclose(G.synthesis.A.grad[layer].numpy(), grad_A, rtol=1e-9)
    assert D.v.grad is None  # D does not require grad in a G phase


def test_d_main_logistic_loss_and_gradients():
    G, D, loss = make(NO_MIX)
    real, c, z, gc = inputs()
    D.requires_grad_(True)
    store, report = collect()
    loss.accumulate_gradients("Dmain", real, c, z, gc, gain=1.0, stats=report)

    M, A, v, b = (t.detach().numpy() for t in (G.mapping.M, G.synthesis.A, D.v, D.b))
    fake = np.einsum("lpw,nw->np", A, z.numpy() @ M.T)
    x = real.numpy().reshape(len(real), -1)
    lf, lr = fake @ v + b, x @ v + b
    # -log(1 - sigmoid(lf)) - log(sigmoid(lr))
    expected = -np.log(1 - np_sigmoid(lf)) - np.log(np_sigmoid(lr))
    np.testing.assert_allclose(store["Loss/D/loss"][0].numpy().ravel(), expected, rtol=1e-10)
    grad_v = (np_sigmoid(lf)[:, None] * fake).mean(0) - (np_sigmoid(-lr)[:, None] * x).mean(0)
    grad_b = np_sigmoid(lf).mean() - np_sigmoid(-lr).mean()
    np.testing.assert_allclose(D.v.grad.numpy(), grad_v, rtol=1e-9)
    np.testing.assert_allclose(D.b.grad.item(), grad_b, rtol=1e-9)
    assert G.synthesis.A.grad is None
    assert store["Loss/signs/real"][0].numpy().ravel().tolist() == np.sign(lr).tolist()


def test_r1_linear_discriminator_closed_form_and_gain():
    G, D, loss = make(NO_MIX)
    real, c, z, gc = inputs()
    D.requires_grad_(True)
    store, report = collect()
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=16.0, stats=report)
    v = D.v.detach().numpy()
    # grad_x (v.x + b) = v  =>  penalty ||v||^2 for every sample, loss 16 * gamma/2 * ||v||^2
    np.testing.assert_allclose(store["Loss/r1_penalty"][0].numpy(), np.full(len(real), v @ v), rtol=1e-12)
    np.testing.assert_allclose(D.v.grad.numpy(), 16.0 * 0.7 * v, rtol=1e-12)
    assert D.b.grad is None or float(D.b.grad) == 0.0
    assert "Loss/D/loss" not in store  # no main loss in the regularisation phase


def test_r1_penalty_matches_finite_differences_on_nonlinear_d():
    G, D, loss = make(NO_MIX, D_class=TanhD)
    real, c, z, gc = inputs(n=3)
    store, report = collect()
    D.requires_grad_(True)
    loss.accumulate_gradients("Dreg", real, c, z, gc, gain=1.0, stats=report)
    eps = 1e-6
    with torch.no_grad():
        for i in range(len(real)):
            x = real[i : i + 1].clone()
            sq = 0.0
            for p in range(R * R):
                e = torch.zeros(R * R, dtype=torch.float64)
                e[p] = eps
                e = e.view(1, 1, R, R)
                sq += ((D(x + e, None) - D(x - e, None)).item() / (2 * eps)) ** 2
            assert store["Loss/r1_penalty"][0][i].item() == pytest.approx(sq, rel=1e-6)


def test_dboth_equals_dmain_plus_dreg_with_one_real_pass():
    real, c, z, gc = inputs()
    grads = {}
    for phases in (("Dboth",), ("Dmain", "Dreg")):
        G, D, loss = make(NO_MIX, D_class=TanhD, seed=3)
        D.requires_grad_(True)
        store, report = collect()
        for ph in phases:
            loss.accumulate_gradients(ph, real, c, z, gc, gain=1.0, stats=report)
        grads[phases] = [p.grad.clone() for p in D.parameters()]
        passes = len(store["Loss/scores/real"])
        assert passes == len(phases)  # reals go through D once per phase
    for a, b in zip(grads[("Dboth",)], grads[("Dmain", "Dreg")]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _pl_loss_numpy(A, M, z, noise, pl_mean0, decay, weight):
    w = z @ M.T  # [n, W]
    g = np.einsum("lpw,np->nlw", A, noise)  # J_l^T y for every sample and layer
    a = np.sqrt((g**2).sum(2).mean(1))
    mean = pl_mean0 + decay * (a.mean() - pl_mean0)
    penalty = (a - mean) ** 2
    del w  # linear synthesis: the Jacobian does not depend on w
    return a, mean, penalty, (penalty * weight).mean()


def test_path_length_penalty_formula_and_gradient():
    cfg = LossConfig(style_mixing_prob=0.0, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2)
    G, D, loss = make(cfg)
    real, c, z, gc = inputs(n=8)
    loss.pl_mean.fill_(0.25)
    rng_copy = torch.Generator().manual_seed(0)
    rng_copy.set_state(loss.rng.get_state())
    noise = torch.randn(4, 1, R, R, generator=rng_copy, dtype=torch.float32).double() / math.sqrt(R * R)
    G.requires_grad_(True)
    store, report = collect()
    loss.accumulate_gradients("Greg", real, c, z, gc, gain=4.0, stats=report)

    A, M = G.synthesis.A.detach().numpy(), G.mapping.M.detach().numpy()
    zz, yy = z[:4].numpy(), noise.numpy().reshape(4, -1)
    a, mean, penalty, value = _pl_loss_numpy(A, M, zz, yy, 0.25, 0.01, 2.0)
    np.testing.assert_allclose(store["Loss/pl_penalty"][0].numpy(), penalty, rtol=1e-6)
    assert loss.pl_mean.item() == pytest.approx(mean, rel=1e-6)
    # Gradient (incl. the term through pl_mean) against central differences of the formula.
    eps = 1e-6
    for idx in [(0, 0, 0), (1, 5, 1), (2, 15, 0)]:
        Ap, Am = A.copy(), A.copy()
        Ap[idx] += eps
        Am[idx] -= eps
        numeric = 4.0 * (_pl_loss_numpy(Ap, M, zz, yy, 0.25, 0.01, 2.0)[3] - _pl_loss_numpy(Am, M, zz, yy, 0.25, 0.01, 2.0)[3]) / (2 * eps)
        assert G.synthesis.A.grad[idx].item() == pytest.approx(numeric, rel=1e-4, abs=1e-9)


def test_style_mixing_cutoff_and_probability():
    cfg = LossConfig(style_mixing_prob=1.0)
    G, D, loss = make(cfg)
    z = torch.randn(5, Z, dtype=torch.float64)
    cutoffs = set()
    for _ in range(60):
        rng_copy = torch.Generator().manual_seed(0)
        rng_copy.set_state(loss.rng.get_state())
        cutoff = int(torch.randint(1, NUM_WS, (), generator=rng_copy))
        torch.rand((), generator=rng_copy)
        mix_z = torch.randn(5, Z, generator=rng_copy).double()
        _, ws = loss.run_G(z, torch.zeros(5, 0))
        M = G.mapping.M.detach()
        torch.testing.assert_close(ws[:, :cutoff], (z @ M.T).unsqueeze(1).expand(-1, cutoff, -1))
        torch.testing.assert_close(ws[:, cutoff:], (mix_z @ M.T).unsqueeze(1).expand(-1, NUM_WS - cutoff, -1))
        cutoffs.add(cutoff)
    assert cutoffs == set(range(1, NUM_WS))  # uniform on [1, num_ws)

    G, D, loss = make(LossConfig(style_mixing_prob=0.9))
    n, unmixed = 3000, 0
    z = torch.randn(2, Z, dtype=torch.float64)
    for _ in range(n):
        _, ws = loss.run_G(z, torch.zeros(2, 0))
        unmixed += bool(torch.equal(ws[:, 0], ws[:, -1]))
    # Binomial(3000, 0.1): mean 300, sd 16.4
    assert abs(unmixed - 300) < 5 * 16.4
    # Only the first mapping call of each run updates the w_avg EMA.
    assert G.mapping.ema_updates == n


def test_adam_lazy_regularisation_correction():
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    class Cfg:
        optim = OptimConfig(lr=0.0025, betas=(0.0, 0.99), eps=1e-8)

    opt_g = make_optimizer(G, Cfg, 4)
    opt_d = make_optimizer(D, Cfg, 16)
    g, d = opt_g.param_groups[0], opt_d.param_groups[0]
    assert g["lr"] == pytest.approx(0.002, rel=1e-12)  # the study's G lr
    assert d["lr"] == pytest.approx(0.0023529411764705885, rel=1e-12)  # reported as 0.0023
    assert g["betas"][0] == 0.0 and d["betas"][0] == 0.0
    assert g["betas"][1] == pytest.approx(math.exp(0.8 * math.log(0.99)), rel=1e-12)
    assert d["betas"][1] == pytest.approx(math.exp(16 / 17 * math.log(0.99)), rel=1e-12)
    assert g["eps"] == 1e-8


def test_ema_beta_half_life_and_rampup():
    # Half-life: after ema_nimg / batch minibatches the old weights keep weight 1/2.
    beta = ema_beta(batch=32, cur_nimg=10**7, ema_kimg=10.0, ema_rampup=0.05)
    assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-12)
    # Ramp-up: half-life min(10 kimg, 0.05 * cur_nimg) = 5000 images at 100k images.
    assert ema_beta(32, 100_000, 10.0, 0.05) == pytest.approx(0.5 ** (32 / 5000), rel=1e-12)
    assert ema_beta(32, 0, 10.0, 0.05) == 0.0  # first step copies G
    assert ema_beta(32, 0, 10.0, None) == pytest.approx(0.5 ** (32 / 10000), rel=1e-12)

    G, G_ema = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    G.register_buffer("w_avg", torch.tensor([1.0, 2.0]))
    G_ema.register_buffer("w_avg", torch.zeros(2))
    old = G_ema.weight.detach().clone()
    update_ema_(G_ema, G, 0.9)
    torch.testing.assert_close(G_ema.weight, 0.9 * old + 0.1 * G.weight.detach())
    torch.testing.assert_close(G_ema.w_avg, G.w_avg)  # buffers are copied, not averaged
