"""A smooth 3-D field as a tensor product of uniform cubic B-splines (torch).

The field on an (X, Y, Z) voxel grid is ``F = C x_0 B_0 x_1 B_1 x_2 B_2`` (mode products), where
``B_a`` (n_a, K_a) holds the cubic B-spline basis sampled at the voxels of axis ``a`` and ``C``
(K_0, K_1, K_2) the coefficients. Everything separable stays separable: derivatives use the
derivative bases, and the bending energy is taken from differences of the coefficients, so no
3-D second-derivative images are ever formed.
Source: de Boor, "A Practical Guide to Splines" (cubic B-spline); Rueckert et al. 1999 IEEE TMI 18:712
(bending energy of a tensor-product B-spline); Andersson et al. 2003 (topup's field model).
"""

from __future__ import annotations

import math

import torch


def _cubic(t: torch.Tensor, derivative: int) -> torch.Tensor:
    """Cubic B-spline (support [-2, 2]) or its first/second derivative at ``t``."""
    a = t.abs()
    inner, outer = a < 1, (a >= 1) & (a < 2)
    zero = torch.zeros_like(t)
    if derivative == 0:
        return torch.where(inner, 2 / 3 - a**2 + a**3 / 2, torch.where(outer, (2 - a) ** 3 / 6, zero))
    if derivative == 1:
        return torch.where(inner, -2 * t + 1.5 * t * a, torch.where(outer, -torch.sign(t) * (2 - a) ** 2 / 2, zero))
    return torch.where(inner, -2 + 3 * a, torch.where(outer, 2 - a, zero))


def basis(n: int, spacing: float, voxel_mm: float, dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, ...]:
    """Basis matrices (n, K) for ``n`` voxels of ``voxel_mm`` and knots every ``spacing`` voxels.

    Returns (B, dB/dx, d2B/dx2) with derivatives per mm. The knots are centred on the axis and
    one extra knot lies beyond each end, so every voxel sees four basis functions."""
    intervals = max(1, math.ceil((n - 1) / spacing))
    origin = ((n - 1) - intervals * spacing) / 2
    knots = origin + spacing * torch.arange(-1, intervals + 2, dtype=dtype, device=device)
    t = (torch.arange(n, dtype=dtype, device=device)[:, None] - knots[None, :]) / spacing
    return tuple(_cubic(t, k) / (spacing * voxel_mm) ** k for k in range(3))


def mode_product(coef: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
    """``C x_0 M_0 x_1 M_1 x_2 M_2``: apply ``mats[a]`` (m_a, K_a) along axis ``a`` of ``coef``."""
    out = torch.einsum("abc,kc->abk", coef, mats[2])
    out = torch.einsum("abk,jb->ajk", out, mats[1])
    return torch.einsum("ajk,ia->ijk", out, mats[0])


class SplineField:
    """Cubic B-spline field on a voxel grid of ``shape`` with ``voxel_mm`` sizes, knots every ``knot_mm``."""

    def __init__(self, shape: tuple[int, int, int], voxel_mm, knot_mm: float, dtype=torch.float64, device="cpu"):
        self.shape = tuple(shape)
        self.bases = [basis(n, max(knot_mm / v, 1.0), v, dtype, device) for n, v in zip(shape, voxel_mm)]
        self.n_coef = tuple(b[0].shape[1] for b in self.bases)
        self.knot_mm = [max(knot_mm, v) for v in voxel_mm]

    def field(self, coef: torch.Tensor) -> torch.Tensor:
        """(X, Y, Z) field values."""
        return mode_product(coef, [b[0] for b in self.bases])

    def derivative(self, coef: torch.Tensor, axis: int) -> torch.Tensor:
        """(X, Y, Z) first derivative along ``axis`` per mm."""
        return mode_product(coef, [b[1] if a == axis else b[0] for a, b in enumerate(self.bases)])

    def bending_energy(self, coef: torch.Tensor) -> torch.Tensor:
        """Mean of sum_ij (d2F/dx_i dx_j)^2 over the coefficients, from second differences of the
        coefficients (the P-spline form of the bending energy, Eilers & Marx 1996; exact on the
        grid only for a polynomial field, within a constant factor elsewhere), field^2 / mm^4."""
        total = coef.new_zeros(())
        for a in range(3):
            for b in range(a, 3):
                diff = torch.diff(torch.diff(coef, dim=a), dim=b) / (self.knot_mm[a] * self.knot_mm[b])
                total = total + (1 if a == b else 2) * diff.pow(2).mean()
        return total

    def fit(self, values: torch.Tensor, smooth: float = 1e-3) -> torch.Tensor:
        """Coefficients (K_0, K_1, K_2) of a (X, Y, Z) field: separable least squares with a small
        second-difference penalty, which also fixes the coefficients the voxels do not determine
        (knots as dense as the voxels)."""
        solvers = []
        for b in self.bases:
            gram = b[0].T @ b[0]
            second = torch.diff(torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device), n=2, dim=0)
            penalty = smooth * gram.diagonal().mean() * (second.T @ second)
            solvers.append(torch.linalg.solve(gram + penalty, b[0].T))
        return mode_product(values.to(solvers[0]), solvers)
