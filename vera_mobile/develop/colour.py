"""Colour maths for the develop engine, in PyTorch: sRGB transfer, OKLab, white balance.

Constants are the published ones (IEC 61966-2-1 sRGB, Bradford, Ottosson's OKLab, Krystek's
Planckian locus), typed once here; tests/test_develop.py checks them against colour-science, which
is the oracle and is not needed at run time.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# --- sRGB (IEC 61966-2-1) ------------------------------------------------------------------------

# The standard's 4-decimal matrix (colour-science uses the same), D65 white at xy (0.3127, 0.3290).
SRGB_TO_XYZ = np.array([
    [0.4124, 0.3576, 0.1805],
    [0.2126, 0.7152, 0.0722],
    [0.0193, 0.1192, 0.9505],
])
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)
D65_XY = (0.3127, 0.3290)


def srgb_decode(encoded: Tensor) -> Tensor:
    """sRGB-encoded values in [0, 1] to linear light."""
    # The clamp keeps pow's gradient finite where torch.where discards that branch.
    curve = ((encoded.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(encoded <= 0.04045, encoded / 12.92, curve)


def srgb_encode(linear: Tensor) -> Tensor:
    """Linear light in [0, 1] to sRGB-encoded values."""
    curve = 1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055
    return torch.where(linear <= 0.0031308, linear * 12.92, curve)


def _apply_matrix(matrix: np.ndarray, rgb: Tensor) -> Tensor:
    return rgb @ torch.as_tensor(matrix.T, dtype=rgb.dtype, device=rgb.device)


# --- OKLab (Ottosson 2020), straight from linear sRGB ----------------------------------------------

_LINEAR_TO_LMS = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
])
_LMS_TO_OKLAB = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
_LMS_TO_LINEAR = np.linalg.inv(_LINEAR_TO_LMS)
_OKLAB_TO_LMS = np.linalg.inv(_LMS_TO_OKLAB)
_CBRT_FLOOR = 1e-12  # keeps the cube root's gradient finite at black


def linear_to_oklab(linear: Tensor) -> Tensor:
    """Linear sRGB [..., 3] (non-negative) to OKLab [..., 3] (L, a, b)."""
    lms = _apply_matrix(_LINEAR_TO_LMS, linear).clamp_min(_CBRT_FLOOR)
    return _apply_matrix(_LMS_TO_OKLAB, lms ** (1 / 3))


def oklab_to_linear(lab: Tensor) -> Tensor:
    """OKLab [..., 3] to linear sRGB [..., 3] (may leave [0, 1] for colours outside the gamut)."""
    return _apply_matrix(_LMS_TO_LINEAR, _apply_matrix(_OKLAB_TO_LMS, lab) ** 3)


# --- White balance: a source white on the Planckian locus, Bradford von Kries to D65 ---------------

_BRADFORD = np.array([
    [0.8951, 0.2664, -0.1614],
    [-0.7502, 1.7135, 0.0367],
    [0.0389, -0.0685, 1.0296],
])
D65_CCT = 6504.0  # kelvin; the sliders move the white along the locus relative to this point


def planckian_uv(cct: Tensor) -> Tensor:
    """CIE 1960 uv of a black body at `cct` kelvin (Krystek 1985; |Δuv| < 1e-4 on 1000..15000 K)."""
    t = cct
    u = (0.860117757 + 1.54118254e-4 * t + 1.28641212e-7 * t**2) / (1 + 8.42420235e-4 * t + 7.08145163e-7 * t**2)
    v = (0.317398726 + 4.22806245e-5 * t + 4.20481691e-8 * t**2) / (1 - 2.89741816e-5 * t + 1.61456053e-7 * t**2)
    return torch.stack([u, v], dim=-1)


def uv_to_xy(uv: Tensor) -> Tensor:
    u, v = uv.unbind(-1)
    d = 2 * u - 8 * v + 4
    return torch.stack([3 * u / d, 2 * v / d], dim=-1)


def xy_to_uv(xy: Tensor) -> Tensor:
    x, y = xy.unbind(-1)
    d = -2 * x + 12 * y + 3
    return torch.stack([4 * x / d, 6 * y / d], dim=-1)


def source_white_xy(cct: Tensor, delta_duv: Tensor) -> Tensor:
    """xy of the white the photo is assumed to be lit by, for a CCT and a Duv offset from D65.

    D65 is not on the Planckian locus (Duv ≈ +0.003), so the white is D65 moved by the locus's own
    displacement from D65_CCT to `cct`, plus `delta_duv` along the locus normal (positive = greener,
    the Ohno 2013 sign). At (D65_CCT, 0) this is exactly D65.
    """
    d65_uv = xy_to_uv(torch.tensor(D65_XY, dtype=cct.dtype, device=cct.device))
    along = planckian_uv(cct) - planckian_uv(torch.full_like(cct, D65_CCT))
    # Unit normal from the tangent (central difference in kelvin); u falls as CCT rises, so the
    # tangent rotated clockwise points to larger v: above the locus, towards green.
    step = cct * 1e-4
    tangent = planckian_uv(cct + step) - planckian_uv(cct - step)
    normal = torch.stack([tangent[..., 1], -tangent[..., 0]], dim=-1)
    normal = normal / normal.norm(dim=-1, keepdim=True)
    return uv_to_xy(d65_uv + along + delta_duv[..., None] * normal)


def _xy_to_xyz(xy: Tensor) -> Tensor:
    x, y = xy.unbind(-1)
    return torch.stack([x / y, torch.ones_like(x), (1 - x - y) / y], dim=-1)


def adaptation_matrix(source_xy: Tensor) -> Tensor:
    """Linear-sRGB [..., 3, 3] matrix adapting colours seen under `source_xy` to D65 (Bradford, full)."""
    dtype, device = source_xy.dtype, source_xy.device
    bradford = torch.as_tensor(_BRADFORD, dtype=dtype, device=device)
    lms_source = _xy_to_xyz(source_xy) @ bradford.T
    lms_target = _xy_to_xyz(torch.tensor(D65_XY, dtype=dtype, device=device)) @ bradford.T
    gains = torch.diag_embed(lms_target / lms_source)
    cat = torch.linalg.inv(bradford) @ gains @ bradford
    to_xyz = torch.as_tensor(SRGB_TO_XYZ, dtype=dtype, device=device)
    return torch.as_tensor(XYZ_TO_SRGB, dtype=dtype, device=device) @ cat @ to_xyz
