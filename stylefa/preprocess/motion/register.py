"""Register one volume to its prediction: rigid (6 dof) + eddy affine along the PE axis (4 dof).

Why our own optimiser rather than ``dipy.align.imaffine``: dipy's transforms are fixed Cython classes
(translation, rigid, rigid + isotropic scale, full 12-dof affine); none restricts the non-rigid part
to the phase-encoding axis (a full affine has 6 spurious dof that absorb noise and leak into the
b-vector rotation), and the susceptibility displacement cannot be put inside its sampling. Here the
sampling map is the very one ``resample_once`` uses (affine, then the SDC displacement along PE,
times its Jacobian), differentiated by torch (trilinear ``grid_sample``) and minimised with L-BFGS
on the negative Pearson correlation with the target inside the brain mask (insensitive to the
global intensity change that eddy scaling and b-dependent signal cause). Parameters are scaled to
"mm at 50 mm from the centre" so one step size fits rotations, translations and eddy terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RADIUS_MM = 50.0


@dataclass
class Geometry:
    """Constants of the reference grid, as torch tensors (float64)."""

    affine: object
    inv_affine: object
    centre_world: object
    centre_vox: object
    zooms: object
    shape: tuple
    pe_axis: int

    @classmethod
    def build(cls, affine, shape, pe_axis):
        import torch

        from .transforms import grid_centre

        affine = np.asarray(affine, float)
        c_vox, c_world = grid_centre(affine, shape)
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        t = lambda a: torch.as_tensor(np.asarray(a, float), dtype=torch.float64)  # noqa: E731
        return cls(t(affine), t(np.linalg.inv(affine)), t(c_world), t(c_vox), t(zooms), tuple(shape[:3]), pe_axis)


def _rotation(angles):
    import torch

    cx, cy, cz = torch.cos(angles)
    sx, sy, sz = torch.sin(angles)
    one, zero = torch.ones((), dtype=angles.dtype), torch.zeros((), dtype=angles.dtype)
    rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]), torch.stack([zero, sx, cx])])
    ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]), torch.stack([zero, zero, one])])
    return rz @ ry @ rx


def voxel_map_torch(rigid, eddy, geo: Geometry):
    """(3,4) reference voxel -> acquired voxel, same maths as ``transforms.compose_affine``."""
    import torch

    rot = _rotation(rigid[:3])
    bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    r_world = torch.cat([torch.cat([rot, (geo.centre_world - rot @ geo.centre_world + rigid[3:6])[:, None]], 1),
                         bottom], 0)
    m = geo.inv_affine @ r_world @ geo.affine
    if eddy is not None:
        axis = geo.pe_axis
        others = [a for a in range(3) if a != axis]
        coef = torch.zeros(3, dtype=torch.float64)
        coef = coef.index_put((torch.tensor([axis, others[0], others[1]]),), eddy[:3])
        row = torch.cat([coef * geo.zooms / geo.zooms[axis],
                         ((eddy[3] - (coef * geo.zooms * geo.centre_vox).sum()) / geo.zooms[axis])[None]])
        e = torch.eye(4, dtype=torch.float64) + torch.nn.functional.one_hot(torch.tensor(axis), 4).double()[:, None] * row
        m = e @ m
    return m[:3]


def register_volume(moving, points, target, geo: Geometry, sdc=None, rigid0=None, eddy0=None,
                    use_eddy: bool = False, max_iter: int = 40) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Find rigid (6,) and eddy (4,) parameters maximising the correlation of the resampled ``moving``
    volume with ``target``.

    ``moving`` (X,Y,Z) float32 acquired volume (already smoothed for this level); ``points`` (P,3)
    reference voxel indices; ``target`` (P,) values there; ``sdc`` None or (d (P,), jac (P,)) the
    susceptibility displacement (voxels along ``geo.pe_axis`` of the volume's own phase encoding) and
    Jacobian at the points; ``rigid0``/``eddy0`` the start. Returns (rigid, eddy or None, r).
    """
    import torch

    vol = torch.as_tensor(np.ascontiguousarray(moving, np.float32))[None, None]
    pts = torch.as_tensor(np.asarray(points, np.float64))
    tgt = torch.as_tensor(np.asarray(target, np.float32)).double()
    tgt = (tgt - tgt.mean()) / (tgt.std() + 1e-12)
    size = torch.tensor(geo.shape, dtype=torch.float64)
    d = jac = None
    if sdc is not None:
        d = torch.as_tensor(np.asarray(sdc[0], np.float64))
        jac = torch.as_tensor(np.asarray(sdc[1], np.float64))
    scale = torch.tensor([RADIUS_MM] * 3 + [1.0] * 3, dtype=torch.float64)
    escale = torch.tensor([RADIUS_MM] * 3, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    x_r = (torch.as_tensor(np.zeros(6) if rigid0 is None else np.asarray(rigid0, float)) * scale).clone()
    x_r.requires_grad_(True)
    params = [x_r]
    x_e = None
    if use_eddy:
        # the constant shift along PE is left out: within one volume it is exactly a head translation
        # along PE (eddy's --dont_sep_offs_move); it stays in the rigid translation
        x_e = (torch.as_tensor(np.zeros(3) if eddy0 is None else np.asarray(eddy0, float)[:3]) * escale).clone()
        x_e.requires_grad_(True)
        params.append(x_e)

    def loss_fn():
        m = voxel_map_torch(x_r / scale, None if x_e is None else torch.cat([x_e / escale, zero]), geo)
        u = pts @ m[:, :3].T + m[:, 3]
        if d is not None:
            u = u.clone()
            u[:, geo.pe_axis] = u[:, geo.pe_axis] + d
        g = (2.0 * u / (size - 1.0) - 1.0).flip(-1).float()
        s = torch.nn.functional.grid_sample(vol, g.view(1, 1, 1, -1, 3), mode="bilinear",
                                            padding_mode="zeros", align_corners=True).view(-1).double()
        if jac is not None:
            s = s * jac
        s = (s - s.mean()) / (s.std() + 1e-12)
        return 1.0 - (s * tgt).mean()

    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        r = 1.0 - float(loss_fn())
    rigid = (x_r / scale).detach().numpy().copy()
    eddy = None if x_e is None else np.append((x_e / escale).detach().numpy(), 0.0)
    return rigid, eddy, r
