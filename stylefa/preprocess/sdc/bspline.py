"""A smooth 3-D field as a tensor product of uniform cubic B-splines (torch).

The field on an (X, Y, Z) voxel grid is ``F = C x_0 B_0 x_1 B_1 x_2 B_2`` (mode products), where
``B_a`` (n_a, K_a) holds the cubic B-spline basis sampled at the voxels of axis ``a`` and ``C``
(K_0, K_1, K_2) the coefficients. Everything separable stays separable: derivatives use the
derivative bases, and the bending energy is an exact quadratic form in ``C`` built from the 1-D
Gram matrices, so no 3-D second-derivative images are ever formed.
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


def basis(n: int, spacing: float, voxel_mm: float, dtype=torch.float64) -> tuple[torch.Tensor, ...]:
    """Basis matrices (n, K) for ``n`` voxels of ``voxel_mm`` and knots every ``spacing`` voxels.

    Returns (B, dB/dx, d2B/dx2) with derivatives per mm. The knots are centred on the axis and
    one extra knot lies beyond each end, so every voxel sees four basis functions."""
    intervals = max(1, math.ceil((n - 1) / spacing))
    origin = ((n - 1) - intervals * spacing) / 2
    knots = origin + spacing * torch.arange(-1, intervals + 2, dtype=dtype)
    t = (torch.arange(n, dtype=dtype)[:, None] - knots[None, :]) / spacing
    return tuple(_cubic(t, k) / (spacing * voxel_mm) ** k for k in range(3))


def mode_product(coef: torch.Tensor, mats: list[torch.Tensor]) -> torch.Tensor:
    """``C x_0 M_0 x_1 M_1 x_2 M_2``: apply ``mats[a]`` (m_a, K_a) along axis ``a`` of ``coef``."""
    out = torch.einsum("abc,kc->abk", coef, mats[2])
    out = torch.einsum("abk,jb->ajk", out, mats[1])
    return torch.einsum("ajk,ia->ijk", out, mats[0])


class SplineField:
    """Cubic B-spline field on a voxel grid of ``shape`` with ``voxel_mm`` sizes, knots every ``knot_mm``."""

    def __init__(self, shape: tuple[int, int, int], voxel_mm, knot_mm: float, dtype=torch.float64):
        self.shape = tuple(shape)
        self.bases = [basis(n, max(knot_mm / v, 1.0), v, dtype) for n, v in zip(shape, voxel_mm)]
        self.n_coef = tuple(b[0].shape[1] for b in self.bases)
        # 1-D Gram matrices G[a][k] = D_k^T D_k, for the bending energy as a quadratic form
        self.grams = [[d.T @ d for d in b] for b in self.bases]
        self.cross = [b[1].T @ b[1] for b in self.bases]

    def field(self, coef: torch.Tensor) -> torch.Tensor:
        """(X, Y, Z) field values."""
        return mode_product(coef, [b[0] for b in self.bases])

    def derivative(self, coef: torch.Tensor, axis: int) -> torch.Tensor:
        """(X, Y, Z) first derivative along ``axis`` per mm."""
        return mode_product(coef, [b[1] if a == axis else b[0] for a, b in enumerate(self.bases)])

    def bending_energy(self, coef: torch.Tensor) -> torch.Tensor:
        """Mean over voxels of sum_ij (d2F/dx_i dx_j)^2, units of field^2 / mm^4 (exact on the grid)."""
        g = self.grams
        total = coef.new_zeros(())
        for a in range(3):  # pure second derivatives
            mats = [g[b][2] if b == a else g[b][0] for b in range(3)]
            total = total + (coef * mode_product(coef, mats)).sum()
        for a, b in ((0, 1), (0, 2), (1, 2)):  # mixed, counted twice
            mats = [g[c][1] if c in (a, b) else g[c][0] for c in range(3)]
            total = total + 2 * (coef * mode_product(coef, mats)).sum()
        return total / math.prod(self.shape)

    def fit(self, values: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
        """Least-squares coefficients (K_0, K_1, K_2) of a (X, Y, Z) field (separable normal equations)."""
        pinvs = []
        for b in self.bases:
            gram = b[0].T @ b[0]
            gram = gram + ridge * torch.eye(gram.shape[0], dtype=gram.dtype) * gram.diagonal().mean()
            pinvs.append(torch.linalg.solve(gram, b[0].T))
        return mode_product(values.to(pinvs[0].dtype), pinvs)
