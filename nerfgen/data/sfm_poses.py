"""Camera poses between COLMAP and nerfgen: OpenCV world-to-camera <-> OpenGL camera-to-world,
the normalisation ``transforms.json`` gets (mean up +z, centred on the point the optical axes pass
closest to, mean distance :data:`CAMERA_DISTANCE`), and pose errors after a similarity alignment
(how a reconstruction is compared with reference poses)."""

from __future__ import annotations

import numpy as np

CAMERA_DISTANCE = 4.0
"""Mean distance of the cameras from the scene centre in ``transforms.json`` (colmap2nerf's)."""
_FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes <-> OpenGL camera axes


def opengl_c2w_from_colmap(cam_from_world: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world ``[4, 4]`` from COLMAP's OpenCV world-to-camera ``[3, 4]``."""
    r, t = cam_from_world[:3, :3], cam_from_world[:3, 3]
    c2w = np.eye(4)
    c2w[:3, :3] = r.T @ _FLIP
    c2w[:3, 3] = -r.T @ t
    return c2w


def colmap_from_opengl_c2w(c2w: np.ndarray) -> np.ndarray:
    """COLMAP's OpenCV world-to-camera ``[3, 4]`` from an OpenGL camera-to-world ``[3|4, 4]``."""
    r = c2w[:3, :3] @ _FLIP
    return np.concatenate([r.T, (-r.T @ c2w[:3, 3])[:, None]], axis=1)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` ``[3, 3]`` (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-9:  # opposite: half a turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def _look_at_point(origins: np.ndarray, forward: np.ndarray) -> np.ndarray | None:
    """Least-squares point closest to all optical axes; None when they are near parallel."""
    d = forward / np.linalg.norm(forward, axis=1, keepdims=True)
    proj = np.eye(3)[None] - d[:, :, None] * d[:, None, :]  # [n, 3, 3]
    a, b = proj.sum(0), np.einsum("nij,nj->i", proj, origins)
    if np.linalg.cond(a) > 1e6:
        return None
    return np.linalg.solve(a, b)


def normalise_poses(c2w: np.ndarray, points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """colmap2nerf's frame: mean up vector to +z, look-at point to the origin, mean distance 4.

    Args:
        c2w: OpenGL camera-to-world poses. ``[n, 4, 4]``.
        points: Sparse points, the fallback centre (their median) when the optical axes are near
            parallel. ``[p, 3]``.

    Returns:
        ``(poses, transform)``: the new poses ``[n, 4, 4]`` and the similarity ``[4, 4]`` applied
        (``new_point = transform @ [point, 1]``).
    """
    rot = np.eye(4)
    rot[:3, :3] = _rotation_between(c2w[:, :3, 1].mean(0), np.array([0.0, 0.0, 1.0]))
    poses = rot[None] @ c2w
    centre = _look_at_point(poses[:, :3, 3], -poses[:, :3, 2])
    if centre is None:
        centre = (rot[:3, :3] @ np.median(points, 0)) if points is not None and len(points) else poses[:, :3, 3].mean(0)
    distance = float(np.linalg.norm(poses[:, :3, 3] - centre, axis=1).mean())
    scale = CAMERA_DISTANCE / max(distance, 1e-12)
    shift = np.eye(4)
    shift[:3, :3] *= scale
    shift[:3, 3] = -scale * centre
    transform = shift @ rot
    poses = poses.copy()
    poses[:, :3, 3] = (poses[:, :3, 3] - centre) * scale
    return poses, transform


def align_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity with ``dst ~ s * R @ src + t``.

    Args:
        src, dst: Corresponding points. ``[n, 3]`` each, ``n >= 3``.

    Returns:
        ``(s, R [3, 3], t [3])``.
    """
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(xd.T @ xs / len(src))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    r = u @ sign @ vt
    s = float(np.trace(np.diag(sig) @ sign) / (xs**2).sum(1).mean())
    return s, r, mu_d - s * r @ mu_s


def pose_errors(c2w: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation error (degrees) and position error (fraction of the reference cameras' spread)
    per camera, after aligning ``c2w``'s camera centres to ``reference``'s (:func:`align_similarity`).

    Args:
        c2w: Estimated camera-to-world poses. ``[n, 3|4, 4]``.
        reference: The same cameras' reference poses, same axis convention. ``[n, 3|4, 4]``.

    Returns:
        ``(rotation_deg [n], position_frac [n])``; the spread is the RMS distance of the
        reference centres from their mean.
    """
    s, r, t = align_similarity(c2w[:, :3, 3], reference[:, :3, 3])
    centres = s * c2w[:, :3, 3] @ r.T + t
    rel = np.einsum("nji,njk->nik", reference[:, :3, :3], r @ c2w[:, :3, :3])  # R_ref^T R R_est
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    ref = reference[:, :3, 3]
    spread = float(np.sqrt(((ref - ref.mean(0)) ** 2).sum(1).mean()))
    return np.degrees(np.arccos(cos)), np.linalg.norm(centres - ref, axis=1) / spread


# --- pycolmap stages ------------------------------------------------------------------------------------------------
