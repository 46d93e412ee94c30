"""Pinhole cameras with OpenCV lens distortion, and the rays through their pixels.

Conventions (shared by the whole package):

* Poses are camera-to-world matrices ``c2w`` of shape ``[3, 4]`` in the
  OpenGL/Blender convention: camera x points right, y up, and the camera
  looks down its -z axis. This is what NeRF-synthetic and instant-ngp
  ``transforms.json`` files store as ``transform_matrix``.
* Pixel coordinates are continuous, with pixel ``(i, j)`` (row, column)
  covering ``[j, j + 1] x [i, i + 1]``; its centre is at ``(j + 0.5, i + 0.5)``.
* Intrinsics ``fx, fy, cx, cy`` are in pixels, image y pointing down (OpenCV).
* Distortion is OpenCV's radial-tangential model ``(k1, k2, p1, p2)``, applied
  to normalised image coordinates (y down); cameras flagged ``fisheye`` use
  OpenCV's fisheye (equidistant) model ``(k1, k2, k3, k4)`` instead (both in
  :mod:`nerfgen.cameras.lenses`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.cameras.lenses import camera_directions, distort, fisheye_polynomial, undistort

__all__ = ["Rays", "Cameras", "all_rays", "pixel_rays", "image_rays", "project"]

Index = int | slice | Sequence[int] | Tensor


def _as_index(idx: Index, n: int) -> slice | Tensor:
    """Turns an int into a length-1 slice (keeps the batch dim), passes others through."""
    if isinstance(idx, bool):
        raise TypeError("cannot index with a bool")
    if isinstance(idx, Tensor) and idx.ndim == 0 and idx.dtype in (torch.int32, torch.int64):
        idx = int(idx)
    elif not isinstance(idx, (int, slice, Tensor, list, tuple)):
        idx = operator.index(idx)  # numpy integers and the like
    if isinstance(idx, int):
        if not -n <= idx < n:
            raise IndexError(f"index {idx} out of range for {n} items")
        idx = idx % n
        return slice(idx, idx + 1)
    if isinstance(idx, slice):
        return idx
    if isinstance(idx, Tensor):
        return idx
    return torch.as_tensor(idx, dtype=torch.long)


@dataclass
class Rays:
    """A batch of rays.

    Attributes:
        origins: Ray origins in world space. ``[n_rays, 3]``.
        directions: Unit ray directions in world space. ``[n_rays, 3]``.
    """

    origins: Tensor  # [n_rays, 3]
    directions: Tensor  # [n_rays, 3]

    def __post_init__(self) -> None:
        if self.origins.ndim != 2 or self.origins.shape[-1] != 3:
            raise ValueError(f"Rays.origins must be [n_rays, 3], got {list(self.origins.shape)}")
        if self.directions.shape != self.origins.shape:
            raise ValueError(
                f"Rays.directions must match origins {list(self.origins.shape)}, "
                f"got {list(self.directions.shape)}"
            )

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, idx: Index) -> Rays:
        """Subset of rays (int keeps a leading dim of 1); used for chunking."""
        idx = _as_index(idx, len(self))
        return Rays(self.origins[idx], self.directions[idx])

    def to(self, device: torch.device | str) -> Rays:
        return Rays(self.origins.to(device), self.directions.to(device))


@dataclass
class Cameras:
    """A set of pinhole cameras sharing one image size.

    Attributes:
        c2w: Camera-to-world poses, OpenGL convention. ``[n_cams, 3, 4]``.
        fx: Focal length along x, pixels. ``[n_cams]``.
        fy: Focal length along y, pixels. ``[n_cams]``.
        cx: Principal point x, pixels. ``[n_cams]``.
        cy: Principal point y (down), pixels. ``[n_cams]``.
        width: Image width in pixels, the same for all cameras.
        height: Image height in pixels, the same for all cameras.
        distortion: OpenCV ``(k1, k2, p1, p2)``, or ``(k1, k2, k3, k4)`` for a fisheye camera.
            ``[n_cams, 4]``. ``None`` at construction means pinhole and is replaced by zeros.
        fisheye: Per camera, whether the lens follows OpenCV's fisheye (equidistant) model.
            ``[n_cams]`` bool. ``None`` at construction means no fisheye camera (all False).
    """

    c2w: Tensor  # [n_cams, 3, 4]
    fx: Tensor  # [n_cams]
    fy: Tensor  # [n_cams]
    cx: Tensor  # [n_cams]
    cy: Tensor  # [n_cams]
    width: int
    height: int
    distortion: Tensor | None = None  # [n_cams, 4]
    fisheye: Tensor | None = None  # [n_cams] bool

    def __post_init__(self) -> None:
        if self.c2w.ndim != 3 or tuple(self.c2w.shape[1:]) != (3, 4):
            raise ValueError(f"Cameras.c2w must be [n_cams, 3, 4], got {list(self.c2w.shape)}")
        if not self.c2w.is_floating_point():
            raise ValueError(f"Cameras.c2w must be floating point, got {self.c2w.dtype}")
        n = self.c2w.shape[0]
        self._lenses: tuple[bool, bool] | None = (False, False) if self.distortion is None and self.fisheye is None \
            else None  # pinholes by construction: known without a read
        if self.distortion is None:
            self.distortion = self.c2w.new_zeros(n, 4)
        for name in ("fx", "fy", "cx", "cy", "distortion"):
            value = getattr(self, name)
            expected = (n,) if name != "distortion" else (n, 4)
            if not isinstance(value, Tensor) or tuple(value.shape) != expected:
                got = list(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"Cameras.{name} must be a tensor of shape {list(expected)}, got {got}")
            if value.dtype != self.c2w.dtype or value.device != self.c2w.device:
                raise ValueError(
                    f"Cameras.{name} is {value.dtype} on {value.device}, "
                    f"expected {self.c2w.dtype} on {self.c2w.device} like c2w"
                )
        if self.fisheye is None:
            self.fisheye = torch.zeros(n, dtype=torch.bool, device=self.c2w.device)
        self._lenses_of = (self.distortion, self.fisheye)  # the tensors ``_lenses`` describes
        fish = self.fisheye
        if not isinstance(fish, Tensor) or fish.dtype != torch.bool or tuple(fish.shape) != (n,):
            got = f"{fish.dtype} {list(fish.shape)}" if isinstance(fish, Tensor) else type(fish).__name__
            raise ValueError(f"Cameras.fisheye must be a bool tensor of shape [{n}], got {got}")
        if fish.device != self.c2w.device:
            raise ValueError(f"Cameras.fisheye is on {fish.device}, expected {self.c2w.device} like c2w")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Cameras.{name} must be a positive int, got {value!r}")

    @property
    def lenses(self) -> tuple[bool, bool]:
        """Whether any camera is a fisheye, and whether any has distortion: known for pinholes built
        without distortion, else read once per camera set, kept and carried to subsets, scaled and
        moved copies (for a subset they may say True where its own cameras would not: the rays are
        the same), so making rays reads nothing back from a GPU."""
        if self._lenses is None or self._lenses_of[0] is not self.distortion or self._lenses_of[1] is not self.fisheye:
            self._lenses = (bool(self.fisheye.any()), bool((self.distortion != 0).any()))
            self._lenses_of = (self.distortion, self.fisheye)  # a lens assigned later is read anew
        return self._lenses

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    def __getitem__(self, idx: Index) -> Cameras:
        """Subset of cameras; an int keeps a batch dim of 1."""
        idx = _as_index(idx, len(self))
        return self._with_lenses(Cameras(
            c2w=self.c2w[idx],
            fx=self.fx[idx],
            fy=self.fy[idx],
            cx=self.cx[idx],
            cy=self.cy[idx],
            width=self.width,
            height=self.height,
            distortion=self.distortion[idx],
            fisheye=self.fisheye[idx],
        ))

    def scaled(self, factor: float) -> Cameras:
        """The same cameras for an image resized by ``1 / factor``.

        The new size is ``round(width / factor) x round(height / factor)``, and
        the intrinsics scale by ``new_width / width`` along x and
        ``new_height / height`` along y, so a continuous pixel coordinate ``u``
        maps to ``u * new_width / width`` and sees the same ray. Distortion
        acts on normalised coordinates and is unchanged.

        Args:
            factor: Downscale factor; > 1 makes images smaller.

        Returns:
            The rescaled cameras.
        """
        if not factor > 0 or not math.isfinite(factor):
            raise ValueError(f"scale factor must be a positive finite number, got {factor!r}")
        new_w = max(1, round(self.width / factor))
        new_h = max(1, round(self.height / factor))
        sx, sy = new_w / self.width, new_h / self.height
        return self._with_lenses(Cameras(
            c2w=self.c2w.clone(),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=self.cx * sx,
            cy=self.cy * sy,
            width=new_w,
            height=new_h,
            distortion=self.distortion.clone(),
            fisheye=self.fisheye.clone(),
        ))

    def footprint(self, point: Tensor) -> float:
        """The width one pixel covers at ``point [3]`` (world units): the median over the cameras of
        their distance to it over their focal length (the mean of ``fx`` and ``fy``).

        >>> cams = Cameras(torch.eye(4)[None, :3].clone(), torch.tensor([100.0]), torch.tensor([100.0]),
        ...                torch.tensor([50.0]), torch.tensor([50.0]), 100, 100)
        >>> round(cams.footprint(torch.tensor([0.0, 0.0, -4.0])), 3)
        0.04
        """
        distance = (self.c2w[:, :, 3] - point.to(self.c2w)).norm(dim=-1)
        return float((distance * 2 / (self.fx + self.fy)).median())

    def to(self, device: torch.device | str) -> Cameras:
        if self.device.type == "cpu":
            self.lenses  # noqa: B018 (a host read now, if any: the moved copy never reads them from a GPU)
        return self._with_lenses(Cameras(
            c2w=self.c2w.to(device),
            fx=self.fx.to(device),
            fy=self.fy.to(device),
            cx=self.cx.to(device),
            cy=self.cy.to(device),
            width=self.width,
            height=self.height,
            distortion=self.distortion.to(device),
            fisheye=self.fisheye.to(device),
        ))

    def _with_lenses(self, cameras: Cameras) -> Cameras:
        """``cameras`` (made from these) knowing what these know of their lenses."""
        if self._lenses is not None and self._lenses_of[0] is self.distortion and self._lenses_of[1] is self.fisheye:
            cameras._lenses, cameras._lenses_of = self._lenses, (cameras.distortion, cameras.fisheye)
        return cameras


def pixel_rays(cameras: Cameras, cam_idx: Tensor, px: Tensor, py: Tensor) -> Rays:
    """Rays through continuous pixel coordinates of chosen cameras.

    The pixel is mapped to normalised coordinates ``((px - cx)/fx, (py - cy)/fy)``,
    undistorted (:func:`undistort`, skipped when all distortion is zero), and
    turned into the OpenGL camera-space direction ``(x, -y, -1)``, rotated to
    world space and normalised. Origins are the camera centres. Rays of fisheye
    cameras invert :func:`distort_fisheye` for the angle ``theta`` off the axis
    and point along ``(sin(theta) x_d / r_d, -sin(theta) y_d / r_d, -cos(theta))``.

    Args:
        cameras: The camera set.
        cam_idx: Camera of each ray, long. ``[n]``.
        px: Pixel x (right); add 0.5 for pixel centres. ``[n]``.
        py: Pixel y (down); add 0.5 for pixel centres. ``[n]``.

    Returns:
        Rays with ``[n, 3]`` origins and unit directions.
    """
    if cam_idx.ndim != 1 or px.shape != cam_idx.shape or py.shape != cam_idx.shape:
        raise ValueError(
            "pixel_rays expects cam_idx, px, py of the same shape [n], got "
            f"{list(cam_idx.shape)}, {list(px.shape)}, {list(py.shape)}"
        )
    if cam_idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"pixel_rays: cam_idx must be an integer tensor, got {cam_idx.dtype}")
    dtype = cameras.c2w.dtype
    px, py = px.to(dtype), py.to(dtype)
    c2w = cameras.c2w[cam_idx]  # [n, 3, 4]
    x = (px - cameras.cx[cam_idx]) / cameras.fx[cam_idx]
    y = (py - cameras.cy[cam_idx]) / cameras.fy[cam_idx]
    any_fisheye, any_distortion = cameras.lenses
    if any_fisheye:
        dirs_cam = camera_directions(x, y, cameras.distortion[cam_idx], cameras.fisheye[cam_idx])
    else:
        if any_distortion:
            x, y = undistort(x, y, cameras.distortion[cam_idx])
        dirs_cam = torch.stack([x, -y, -torch.ones_like(x)], dim=-1)  # [n, 3]
    dirs = (c2w[:, :, :3] @ dirs_cam.unsqueeze(-1)).squeeze(-1)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    return Rays(origins=c2w[:, :, 3].contiguous(), directions=dirs)


def project(cameras: Cameras, index: int, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Project world points into one camera (with lens distortion); inverse of :func:`pixel_rays`.

    Fisheye cameras map the angle ``theta`` off the optical axis (up to 180 degrees, so points
    beside and behind the camera get a position too) through :func:`distort_fisheye`'s polynomial.

    Args:
        cameras: The camera set.
        index: Which camera.
        points: World points. ``[n, 3]``.

    Returns:
        ``px [n]``, ``py [n]`` continuous pixel coordinates and ``depth [n]``, the distance in
        front of the camera along its viewing axis (negative behind it).
    """
    c2w = cameras.c2w[index]
    local = (points - c2w[:, 3]) @ c2w[:, :3]  # world -> camera (rotation is orthonormal)
    depth = -local[:, 2]
    if bool(cameras.fisheye[index]):
        a, b = local[:, 0], -local[:, 1]
        rho = torch.sqrt(a * a + b * b)
        theta_d, _ = fisheye_polynomial(torch.atan2(rho, depth), cameras.distortion[index])
        scale = theta_d / torch.where(rho > 0, rho, torch.ones_like(rho))
        px = scale * a * cameras.fx[index] + cameras.cx[index]
        return px, scale * b * cameras.fy[index] + cameras.cy[index], depth
    safe = torch.where(depth.abs() < 1e-9, torch.full_like(depth, 1e-9), depth)
    x, y = local[:, 0] / safe, -local[:, 1] / safe
    if bool((cameras.distortion[index] != 0).any()):
        x, y = distort(x, y, cameras.distortion[index].expand(x.shape[0], 4))
    return x * cameras.fx[index] + cameras.cx[index], y * cameras.fy[index] + cameras.cy[index], depth


def image_rays(cameras: Cameras, index: int) -> Rays:
    """Rays through all pixel centres of one camera, row-major.

    Args:
        cameras: The camera set.
        index: Which camera.

    Returns:
        Rays of length ``height * width``; ray ``i * width + j`` passes
        through pixel ``(row i, column j)``.
    """
    n = len(cameras)
    if not -n <= index < n:
        raise IndexError(f"camera index {index} out of range for {n} cameras")
    device, dtype = cameras.device, cameras.c2w.dtype
    rows = torch.arange(cameras.height, device=device, dtype=dtype) + 0.5
    cols = torch.arange(cameras.width, device=device, dtype=dtype) + 0.5
    py, px = torch.meshgrid(rows, cols, indexing="ij")
    cam_idx = torch.full((px.numel(),), index % n, device=device, dtype=torch.long)
    return pixel_rays(cameras, cam_idx, px.reshape(-1), py.reshape(-1))


def all_rays(cameras: Cameras) -> Rays:
    """Rays through every pixel centre of every camera: ``[n_cams * H * W]``, image-major, row-major."""
    h, w, n = cameras.height, cameras.width, len(cameras)
    py, px = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    cam = torch.arange(n).repeat_interleave(h * w)
    return pixel_rays(cameras, cam.to(cameras.device), px.reshape(-1).repeat(n).to(cameras.device),
                      py.reshape(-1).repeat(n).to(cameras.device))
