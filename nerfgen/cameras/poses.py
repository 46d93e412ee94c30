r"""Where cameras stand: look-at poses, viewing angles on a sphere, orbits, and the cameras they make.

Every part of nerfgen that places cameras (datasets' orbit videos, text-to-3D's random views and
previews, the built-in prior's training views, the viewer) uses these functions.

Angles (:class:`Views`) follow one convention: world +z is up and the object's centre is the
origin; a camera at elevation :math:`e`, azimuth :math:`a` and distance :math:`r` sits at
:math:`r(\cos e \cos a, \cos e \sin a, \sin e)` and looks at the origin with +z as its up vector.
Azimuth 0 (camera on +x) sees the object's front; azimuth grows counter-clockwise seen from above.
Poses are OpenGL camera-to-world matrices (:mod:`nerfgen.cameras.base`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nerfgen.cameras.base import Cameras

__all__ = ["Orbit", "Views", "fov_cameras", "look_at", "orbit_cameras", "orbit_views", "random_views",
           "scene_center", "sphere_positions", "view_cameras"]


def look_at(
    eye: Sequence[float] | Tensor,
    target: Sequence[float] | Tensor,
    up: Sequence[float] | Tensor = (0.0, 0.0, 1.0),
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """OpenGL camera-to-world pose at ``eye`` looking at ``target``.

    Args:
        eye: Camera centre. ``[3]``.
        target: Point the camera looks at (along its -z). ``[3]``.
        up: World up; the camera's +y lies in the plane of ``up`` and the view axis.
        dtype: Floating type of the pose.

    Returns:
        ``c2w`` ``[3, 4]``.

    >>> look_at((0.0, -4.0, 0.0), (0.0, 0.0, 0.0))[:, 2]  # camera +z points back at the eye
    tensor([ 0., -1.,  0.])
    """
    eye_t = torch.as_tensor(eye, dtype=dtype)
    target_t = torch.as_tensor(target, dtype=dtype, device=eye_t.device)
    up_t = torch.as_tensor(up, dtype=dtype, device=eye_t.device)
    back = eye_t - target_t  # camera +z points away from the target
    if back.norm() < 1e-8:
        raise ValueError("look_at: eye and target coincide")
    z = back / back.norm()
    x = torch.linalg.cross(up_t, z)
    if x.norm() < 1e-6:
        raise ValueError(f"look_at: up {up_t.tolist()} is parallel to the view direction")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z, eye_t], dim=1)


def fov_cameras(c2w: Tensor, fov_deg: Tensor, width: int, height: int, axis: str = "x") -> Cameras:
    """Pinhole cameras with square pixels and the principal point at the image centre.

    Args:
        c2w: ``[n, 3, 4]`` poses.
        fov_deg: ``[n]`` fields of view in degrees, across the image width (``axis="x"``) or its
            height (``axis="y"``).
        width, height: Image size in pixels.
    """
    side = width if axis == "x" else height
    focal = 0.5 * side / torch.tan(0.5 * torch.deg2rad(fov_deg.cpu().float()))
    n = c2w.shape[0]
    return Cameras(c2w=c2w.float(), fx=focal, fy=focal.clone(), cx=torch.full((n,), width / 2),
                   cy=torch.full((n,), height / 2), width=int(width), height=int(height))


@dataclass
class Views:
    """Viewing angles of a batch of cameras around an object (the module's convention).

    Attributes:
        elevation: ``[B]`` degrees above the horizon.
        azimuth: ``[B]`` degrees about the up axis; 0 looks at the object's front.
        distance: ``[B]`` camera distance from the object's centre.
    """

    elevation: Tensor
    azimuth: Tensor
    distance: Tensor

    def __len__(self) -> int:
        return self.elevation.shape[0]

    def repeat(self, n: int) -> Views:
        """The views ``n`` times over (``[n * B]``), as classifier-free guidance batches them."""
        return Views(self.elevation.repeat(n), self.azimuth.repeat(n), self.distance.repeat(n))

    def to(self, device: torch.device | str) -> Views:
        return Views(self.elevation.to(device), self.azimuth.to(device), self.distance.to(device))

    def positions(self) -> Tensor:
        """``[B, 3]`` camera centres."""
        return sphere_positions(self.elevation, self.azimuth, self.distance)

    def stacked(self) -> Tensor:
        """``[B, 3]`` (elevation, azimuth, distance), the camera input of camera-conditioned models."""
        return torch.stack([self.elevation, self.azimuth, self.distance], -1)


def sphere_positions(elevation: Tensor, azimuth: Tensor, distance: Tensor) -> Tensor:
    r"""``[n, 3]`` points :math:`r(\cos e \cos a, \cos e \sin a, \sin e)` for angles in degrees ``[n]``."""
    e, a = torch.deg2rad(elevation), torch.deg2rad(azimuth)
    return distance[:, None] * torch.stack([e.cos() * a.cos(), e.cos() * a.sin(), e.sin()], -1)


def orbit_views(n: int, elevation: float, distance: float, start: float = 0.0) -> Views:
    """``n`` views evenly spaced in azimuth from ``start`` (degrees) at one elevation and distance."""
    azimuth = start + 360.0 * torch.arange(n, dtype=torch.float32) / n
    return Views(torch.full((n,), float(elevation)), azimuth % 360.0, torch.full((n,), float(distance)))


def random_views(
    n: int, elevation: tuple[float, float], distance: tuple[float, float], fov: tuple[float, float],
    generator: torch.Generator,
) -> tuple[Views, Tensor]:
    """``n`` random views: azimuth uniform in [-180, 180), elevation uniform by area on the sphere
    between ``elevation`` (degrees), distance and field of view uniform in their ranges.

    Returns:
        The views (``[n]`` each) and the fields of view ``[n]`` in degrees.
    """
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    lo, hi = (math.sin(math.radians(e)) for e in elevation)
    elevations = torch.rad2deg(torch.asin(lo + (hi - lo) * u[:, 1]))
    azimuths = 360.0 * u[:, 0] - 180.0
    distances = distance[0] + (distance[1] - distance[0]) * u[:, 2]
    fovs = fov[0] + (fov[1] - fov[0]) * u[:, 3]
    return Views(elevations.float(), azimuths.float(), distances.float()), fovs.float()


def view_cameras(views: Views, fov: Tensor, width: int, height: int | None = None) -> Cameras:
    """Pinhole cameras at ``views`` looking at the origin, +z up.

    Args:
        views: ``[n]`` angles and distances.
        fov: ``[n]`` horizontal fields of view in degrees.
        width: Image width in pixels.
        height: Image height (default: square images).
    """
    up = torch.tensor([0.0, 0.0, 1.0])
    c2w = torch.stack([look_at(p, torch.zeros(3), up) for p in views.positions().cpu()])
    return fov_cameras(c2w, fov, width, height or width, axis="x")


def scene_center(cameras: Cameras) -> Tensor:
    """``[3]`` the point closest (least squares) to every camera's optical axis."""
    origins = cameras.c2w[:, :, 3]
    axes = -cameras.c2w[:, :, 2]
    axes = axes / axes.norm(dim=-1, keepdim=True)
    proj = torch.eye(3) - axes[:, :, None] * axes[:, None, :]  # [n, 3, 3]
    a, b = proj.sum(0), (proj @ origins[:, :, None]).sum(0)[:, 0]
    return torch.linalg.lstsq(a, b).solution


@dataclass
class Orbit:
    """A circle of cameras around a scene, all looking at its centre (stored with every run).

    Attributes:
        center: The point the cameras look at.
        up: Unit axis of the circle (the scene's up).
        radius: Distance of the cameras from ``center``.
        rise: Their height above ``center`` along ``up`` (``radius * sin(elevation)``).
        fx, fy: Focal lengths in pixels at ``width`` x ``height``.
        width, height: Image size the focal lengths refer to (the default frame size).
        axis: Forward-facing captures: the mean viewing direction. The cameras then circle at
            ``radius`` in the plane perpendicular to it, ``focus`` behind ``center`` (their shared
            target), instead of going round the scene (None: a 360-degree orbit).
        focus: Distance from the circle's centre to ``center`` along ``axis`` (forward-facing).
    """

    center: tuple[float, float, float]
    up: tuple[float, float, float]
    radius: float
    rise: float
    fx: float
    fy: float
    width: int
    height: int
    axis: tuple[float, float, float] | None = None
    focus: float = 0.0

    @classmethod
    def from_cameras(cls, cameras: Cameras) -> Orbit:
        """The orbit of a capture: centre nearest every optical axis, the mean camera up, the
        cameras' median distance and height, the first camera's intrinsics."""
        center = scene_center(cameras.to("cpu"))
        c2w = cameras.c2w.cpu()
        up = c2w[:, :, 1].mean(0)
        up = up / up.norm()
        offsets = c2w[:, :, 3] - center
        return cls(tuple(center.tolist()), tuple(up.tolist()), float(offsets.norm(dim=-1).median()),
                   float((offsets @ up).median()), float(cameras.fx[0]), float(cameras.fy[0]),
                   cameras.width, cameras.height)

    @classmethod
    def facing(cls, cameras: Cameras, focus: float) -> Orbit:
        """The circle of a forward-facing capture (NeRF's LLFF videos): around the mean camera
        position, perpendicular to the mean viewing direction, with the radius that 90% of the
        cameras lie within, every camera looking at the point ``focus`` ahead."""
        c2w = cameras.c2w.cpu().double()
        mean = c2w[:, :, 3].mean(0)
        axis = -c2w[:, :, 2].mean(0)
        axis = axis / axis.norm()
        up = c2w[:, :, 1].mean(0)
        up = up - (up @ axis) * axis
        up = up / up.norm()
        offsets = c2w[:, :, 3] - mean
        offsets = offsets - (offsets @ axis)[:, None] * axis
        radius = float(torch.quantile(offsets.norm(dim=-1), 0.9)) or 1e-3
        return cls(tuple((mean + focus * axis).tolist()), tuple(up.tolist()), radius, 0.0, float(cameras.fx[0]),
                   float(cameras.fy[0]), cameras.width, cameras.height, tuple(axis.tolist()), float(focus))

    @classmethod
    def around_origin(cls, distance: float, elevation: float, fov: float, resolution: int) -> Orbit:
        """Square frames at ``distance`` and ``elevation`` (degrees) around the origin, +z up, with a
        horizontal field of view ``fov`` (degrees): how generated objects are shown."""
        focal = 0.5 * resolution / math.tan(math.radians(fov) / 2)
        return cls((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), float(distance), distance * math.sin(math.radians(elevation)),
                   focal, focal, int(resolution), int(resolution))

    def basis(self) -> tuple[Tensor, Tensor, Tensor]:
        """Unit ``up`` and the orbit plane's axes ``e1`` (azimuth 0: world x, or y when ``up`` is
        close to x, projected onto the plane) and ``e2 = up x e1``."""
        up = torch.tensor(self.up, dtype=torch.float32)
        up = up / up.norm()
        axis = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
        e1 = axis - (axis @ up) * up
        e1 = e1 / e1.norm()
        return up, e1, torch.linalg.cross(up, e1)

    def cameras(self, n: int, width: int | None = None, height: int | None = None) -> Cameras:
        """``n`` cameras evenly spaced on the circle from azimuth 0, counter-clockwise about ``up``,
        at ``width`` x ``height`` (default: the orbit's size; one given alone keeps the aspect)."""
        if n < 1:
            raise ValueError(f"an orbit needs at least one camera, got {n}")
        w = width or (self.width if height is None else round(self.width * height / self.height))
        h = height or (self.height if width is None else round(self.height * w / self.width))
        center = torch.tensor(self.center, dtype=torch.float32)
        up, e1, e2 = self.basis()
        ring = math.sqrt(max(self.radius**2 - self.rise**2, 1e-12))
        poses = []
        if self.axis is not None:  # a circle facing the scene
            axis = torch.tensor(self.axis, dtype=torch.float32)
            middle, e1 = center - self.focus * axis, up
            e2 = torch.linalg.cross(axis, e1)
        for k in range(n):
            angle = 2 * math.pi * k / n
            if self.axis is not None:
                eye = middle + self.radius * (math.cos(angle) * e1 + math.sin(angle) * e2)
            else:
                eye = center + self.rise * up + ring * (math.cos(angle) * e1 + math.sin(angle) * e2)
            poses.append(look_at(eye, center, up))

        def full(value: float) -> Tensor:
            return torch.full((n,), float(value))

        return Cameras(c2w=torch.stack(poses), fx=full(self.fx * w / self.width), fy=full(self.fy * h / self.height),
                       cx=full(w / 2), cy=full(h / 2), width=int(w), height=int(h))

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        facing = {} if self.axis is None else {"axis": list(self.axis), "focus": self.focus}
        return {"center": list(self.center), "up": list(self.up), "radius": self.radius, "rise": self.rise,
                "fx": self.fx, "fy": self.fy, "width": self.width, "height": self.height, **facing}

    @classmethod
    def from_dict(cls, d: dict, source: str = "orbit") -> Orbit:
        """Inverse of :meth:`to_dict`; also reads the untyped orbit of earlier run directories
        (``height`` the rise, ``height_px`` the image height)."""
        try:
            if "height_px" in d:  # written before run directories were typed
                d = {**d, "rise": d["height"], "height": d["height_px"]}
            axis = tuple(float(v) for v in d["axis"]) if d.get("axis") is not None else None
            orbit = cls(tuple(float(v) for v in d["center"]), tuple(float(v) for v in d["up"]), float(d["radius"]),
                        float(d["rise"]), float(d["fx"]), float(d["fy"]), int(d["width"]), int(d["height"]), axis,
                        float(d.get("focus", 0.0)))
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise ValueError(f"{source}: malformed orbit {d!r} ({exc})") from exc
        numbers = [*orbit.center, *orbit.up, orbit.radius, orbit.rise, orbit.fx, orbit.fy, orbit.focus, *(orbit.axis or ())]
        if (len(orbit.center) != 3 or len(orbit.up) != 3 or (orbit.axis is not None and len(orbit.axis) != 3)
                or not all(math.isfinite(v) and abs(v) < 1e8 for v in numbers) or min(orbit.fx, orbit.fy) <= 0
                or orbit.radius < 0
                or math.hypot(*orbit.up) < 1e-6 or not (0 < orbit.width <= 1 << 16 and 0 < orbit.height <= 1 << 16)):
            raise ValueError(f"{source}: orbit: expected finite values under 1e8, a 3-vector center, a non-zero up, "
                             f"radius >= 0, fx and fy > 0 and an image size in [1, 65536], got {d!r}")
        return orbit


def orbit_cameras(
    n: int, radius: float, elevation_deg: float, fov_x_deg: float, width: int, height: int,
    center: Sequence[float] = (0.0, 0.0, 0.0), up: Sequence[float] = (0.0, 0.0, 1.0),
) -> Cameras:
    """``n`` cameras on a 360-degree :class:`Orbit` around ``center`` at ``elevation_deg``, all
    looking at it, with a horizontal field of view ``fov_x_deg``."""
    if n < 1 or radius <= 0 or not 0 < fov_x_deg < 180 or not -90 < elevation_deg < 90:
        raise ValueError(
            "orbit_cameras expects n >= 1, radius > 0, 0 < fov_x_deg < 180 and "
            f"-90 < elevation_deg < 90, got n={n}, radius={radius}, "
            f"fov_x_deg={fov_x_deg}, elevation_deg={elevation_deg}"
        )
    focal = 0.5 * width / math.tan(0.5 * math.radians(fov_x_deg))
    up_t = torch.as_tensor(up, dtype=torch.float32)
    orbit = Orbit(tuple(float(c) for c in center), tuple((up_t / up_t.norm()).tolist()), float(radius),
                  radius * math.sin(math.radians(elevation_deg)), focal, focal, int(width), int(height))
    return orbit.cameras(n)
