"""Procedural street scenes with Cityscapes label ids: camera, drawing primitives, layout, finish.

A pinhole camera looks down a straight street: ground point (X, 0, z) (metres; X right, z
forward) projects to ``x = vx + f X / z``, ``y = horizon + f (cam_h - Y) / z``. The layout is
drawn back to front (painter's algorithm) on a uint8 BGR image and a uint8 label map of real
Cityscapes *label ids* (void ids included), then per-class textures, shadows, lighting, blur
and noise are applied. Objects live in ``synthetic_objects.py``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np

# Cityscapes label ids used by the renderer.
EGO, BORDER, STATIC, DYNAMIC, GROUND = 1, 2, 4, 5, 6
ROAD, SIDEWALK, PARKING, RAIL = 7, 8, 9, 10
BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY = 11, 12, 13, 17, 19, 20, 21, 22, 23
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = 24, 25, 26, 27, 28, 31, 32, 33

SHIFT = 4                      # cv2 sub-pixel bits
ONE = 1 << SHIFT
Z_FAR = 260.0

# Texture amplitude per label id: (fine grain, medium blotches, coarse shading).
_TEXTURE = {ROAD: (0.07, 0.05, 0.10), SIDEWALK: (0.05, 0.06, 0.06), PARKING: (0.08, 0.06, 0.08),
            BUILDING: (0.04, 0.10, 0.08), WALL: (0.08, 0.14, 0.06), FENCE: (0.05, 0.02, 0.04),
            VEGETATION: (0.38, 0.22, 0.10), TERRAIN: (0.16, 0.28, 0.12), SKY: (0.01, 0.03, 0.10),
            POLE: (0.03, 0.02, 0.03), GROUND: (0.10, 0.15, 0.10), RAIL: (0.10, 0.05, 0.05)}
TEXTURE_LUT = np.zeros((256, 3), np.float32)
TEXTURE_LUT[:] = (0.03, 0.03, 0.04)
for _label_id, _amps in _TEXTURE.items():
    TEXTURE_LUT[_label_id] = _amps


def jitter(rng: np.random.Generator, color: Sequence[float], amount: float = 18.0) -> Tuple[int, int, int]:
    values = np.clip(np.asarray(color, np.float64) + rng.normal(0.0, amount, 3), 0, 255)
    return int(values[0]), int(values[1]), int(values[2])


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish value noise with features of about ``cell`` pixels."""
    small = rng.standard_normal((max(2, int(height / cell) + 2), max(2, int(width / cell) + 2))).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


class Scene:
    """Camera, canvas and the drawing primitives every object uses."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng = rng
        self.height, self.width = height, width
        self.horizon = height * rng.uniform(0.36, 0.5)
        self.vx = width * rng.uniform(0.38, 0.62)
        self.focal = width * rng.uniform(0.72, 0.95)
        self.cam_h = rng.uniform(1.3, 1.8)
        self.z_min = self.focal * self.cam_h / (height - self.horizon)   # depth seen at the bottom row
        self.image = np.zeros((height, width, 3), np.uint8)
        self.label = np.zeros((height, width), np.uint8)

    # -- geometry -------------------------------------------------------------------------
    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        z = np.maximum(np.asarray(z, np.float64), 0.5)
        u = self.vx + self.focal * np.asarray(x, np.float64) / z
        v = self.horizon + self.focal * (self.cam_h - np.asarray(y, np.float64)) / z
        return np.stack(np.broadcast_arrays(u, v), -1)

    def scale(self, z: float) -> float:
        return self.focal / max(z, 0.5)

    def ground_row(self, z: float) -> float:
        return self.horizon + self.focal * self.cam_h / max(z, 0.5)

    # -- drawing (pixel coordinates, float) ---------------------------------------------------
    def polys(self, polygons: Sequence[np.ndarray], color: Tuple[int, int, int], label_id: int = -1) -> None:
        """Fill polygons (each (n, 2) float pixel coords); ``label_id < 0`` paints the image only."""
        pts = [np.round(np.clip(p, -4e4, 4e4) * ONE).astype(np.int32) for p in polygons if len(p) >= 3]
        if not pts:
            return
        cv2.fillPoly(self.image, pts, color, cv2.LINE_8, SHIFT)
        if label_id >= 0:
            cv2.fillPoly(self.label, pts, int(label_id), cv2.LINE_8, SHIFT)

    def lines(self, segments: np.ndarray, thickness: float, color: Tuple[int, int, int], label_id: int = -1) -> None:
        """Draw (n, 2, 2) pixel segments; thickness in pixels (at least 1)."""
        if len(segments) == 0:
            return
        width = max(1, int(round(thickness)))
        pts = [np.round(np.clip(s, -4e4, 4e4) * ONE).astype(np.int32) for s in segments]
        cv2.polylines(self.image, pts, False, color, width, cv2.LINE_8, SHIFT)
        if label_id >= 0:
            cv2.polylines(self.label, pts, False, int(label_id), width, cv2.LINE_8, SHIFT)

    def ellipse(self, center: Tuple[float, float], axes: Tuple[float, float], color: Tuple[int, int, int],
                label_id: int = -1, thickness: float = -1, angle: float = 0.0) -> None:
        c = (int(round(center[0] * ONE)), int(round(center[1] * ONE)))
        a = (max(1, int(round(axes[0] * ONE))), max(1, int(round(axes[1] * ONE))))
        width = -1 if thickness < 0 else max(1, int(round(thickness)))
        cv2.ellipse(self.image, c, a, angle, 0, 360, color, width, cv2.LINE_8, SHIFT)
        if label_id >= 0:
            cv2.ellipse(self.label, c, a, angle, 0, 360, int(label_id), width, cv2.LINE_8, SHIFT)

    # -- 3D helpers ---------------------------------------------------------------------------
    def facade(self, x: float, y0: float, y1: float, z0: float, z1: float) -> np.ndarray:
        """Quad in the plane X = x between heights y0..y1 and depths z0..z1."""
        return self.project([x, x, x, x], [y0, y0, y1, y1], [z0, z1, z1, z0])

    def ground_quad(self, x0: float, x1: float, z0: float, z1: float, y: float = 0.0) -> np.ndarray:
        return self.project([x0, x1, x1, x0], [y, y, y, y], [z0, z0, z1, z1])


def paint_sky_and_ground(scene: Scene) -> None:
    rng, h, w = scene.rng, scene.height, scene.width
    rows_sky = min(h, int(scene.ground_row(Z_FAR)) + 2)                # the ground polygon covers the rest
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:rows_sky, None]
    top = np.array(jitter(rng, (200, 140, 90), 25), np.float32)        # BGR blue-ish
    low = np.array(jitter(rng, (235, 215, 200), 20), np.float32)
    if rng.random() < 0.25:                                            # overcast
        top = low = np.array(jitter(rng, (205, 200, 195), 15), np.float32)
    mix = np.clip(rows / max(scene.horizon / h, 0.05), 0, 1)
    sky = top[None, :] * (1 - mix) + low[None, :] * mix                # (rows_sky, 3)
    clouds = np.clip(smooth_noise(rng, rows_sky, w, w / 6.0) * 0.6 + smooth_noise(rng, rows_sky, w, w / 24.0) * 0.3,
                     0, None)
    image = sky[:, None, :] + clouds[..., None] * rng.uniform(20, 60)
    scene.image[:rows_sky] = np.clip(image, 0, 255).astype(np.uint8)
    scene.label[:] = SKY
    ground = scene.project([-1e4, 1e4, 1e4, -1e4], [0, 0, 0, 0], [Z_FAR, Z_FAR, 1.0, 1.0])
    scene.polys([ground], jitter(rng, (60, 120, 110), 20), TERRAIN)


def paint_skyline(scene: Scene) -> None:
    """Distant buildings and tree lines closing the street at the horizon."""
    rng = scene.rng
    x = -1.2 * Z_FAR
    while x < 1.2 * Z_FAR:
        span = rng.uniform(8, 30)
        if rng.random() < 0.3:
            scene.ellipse(tuple(scene.project(x + span / 2, 4.0, Z_FAR)), (scene.scale(Z_FAR) * span / 2,
                          scene.scale(Z_FAR) * rng.uniform(4, 9)), jitter(rng, (50, 95, 70), 15), VEGETATION)
        else:
            top = rng.uniform(8, 45)
            quad = scene.project([x, x + span, x + span, x], [0, 0, top, top], [Z_FAR] * 4)
            scene.polys([quad], jitter(rng, (150, 150, 155), 30), BUILDING)
        x += span


def paint_street(scene: Scene) -> dict:
    """Road with lane marks and crossings, curbs, tiled sidewalks, parking / rail strips."""
    rng = scene.rng
    left, right = -rng.uniform(2.5, 7.5), rng.uniform(2.5, 7.5)
    walk_l, walk_r = rng.uniform(2.0, 4.5), rng.uniform(2.0, 4.5)
    z_near = 1.0
    asphalt = rng.uniform(60, 130)
    scene.polys([scene.ground_quad(left, right, z_near, Z_FAR)], jitter(rng, (asphalt,) * 3, 6), ROAD)
    mark = jitter(rng, (225, 225, 225), 10)
    # dashed centre / lane lines and solid edge lines (all road pixels)
    lane_xs = np.arange(left + 3.2, right - 1.5, 3.2)
    period, dash = rng.uniform(9, 14), rng.uniform(2.5, 4.5)
    starts = np.arange(z_near + rng.uniform(0, period), 90.0, period)
    quads = [scene.ground_quad(lx - 0.07, lx + 0.07, z0, z0 + dash) for lx in lane_xs for z0 in starts]
    for edge in (left + 0.3, right - 0.3):
        quads.append(scene.ground_quad(edge - 0.06, edge + 0.06, z_near, 120.0))
    if rng.random() < 0.35:                                            # zebra crossing
        zc = rng.uniform(scene.z_min * 1.3, 30.0)
        quads += [scene.ground_quad(x0, x0 + 0.5, zc, zc + 3.0) for x0 in np.arange(left + 0.5, right - 0.5, 1.0)]
    scene.polys(quads, mark)
    rail = None
    if rng.random() < 0.2:                                             # tram rails: Cityscapes "rail track" (void)
        rc = rng.uniform(left + 1.5, right - 1.5)
        rail = rc
        scene.polys([scene.ground_quad(rc - 0.8, rc + 0.8, z_near, Z_FAR)], jitter(rng, (80, 85, 90), 10), RAIL)
        scene.lines(np.stack([scene.project([rc + o, rc + o], [0, 0], [z_near, Z_FAR]) for o in (-0.72, 0.72)]),
                    1, (150, 150, 160))
    tile = jitter(rng, (150, 155, 160), 25)
    seam = tuple(int(c * 0.7) for c in tile)
    for sign, inner, width in ((-1, left, walk_l), (1, right, walk_r)):
        outer = inner + sign * width
        scene.polys([scene.ground_quad(inner, outer, z_near, Z_FAR, 0.15)], tile, SIDEWALK)
        scene.polys([scene.facade(inner, 0.0, 0.15, z_near, Z_FAR)], jitter(rng, (170, 170, 170), 10), SIDEWALK)
        step = rng.uniform(0.6, 1.2)
        zs = np.arange(z_near, 60.0, step)
        cross = np.stack([scene.project([inner, outer], [0.15, 0.15], [z, z]) for z in zs])
        along = np.stack([scene.project([x0, x0], [0.15, 0.15], [z_near, 60.0])
                          for x0 in np.arange(inner, outer, sign * step)[1:]]) if width > step else np.zeros((0, 2, 2))
        scene.lines(np.concatenate([cross, along]) if len(along) else cross, 1, seam)
        if rng.random() < 0.3:                                         # parking bay (void "parking")
            z0 = rng.uniform(scene.z_min, 40.0)
            scene.polys([scene.ground_quad(inner, inner + sign * 0.9 * width, z0, z0 + rng.uniform(5, 12), 0.15)],
                        jitter(rng, (110, 110, 120), 15), PARKING)
    return {"left": left, "right": right, "walk_l": walk_l, "walk_r": walk_r, "rail": rail}


def finish(scene: Scene) -> np.ndarray:
    """Textures per class, cast shadows, lighting, ego vehicle/border voids, blur and noise."""
    rng, h, w = scene.rng, scene.height, scene.width
    amps = TEXTURE_LUT[scene.label]                                    # (h, w, 3)
    gain = amps[..., 0] * rng.standard_normal((h, w), dtype=np.float32)
    gain += amps[..., 1] * smooth_noise(rng, h, w, max(2.0, w / 90.0))
    gain += amps[..., 2] * smooth_noise(rng, h, w, w / 10.0)
    gain += 1.0
    shadow = np.ones((h, w), np.float32)
    for _ in range(int(rng.integers(0, 4))):                           # building shadows across the street
        x0 = rng.uniform(-0.2, 1.0) * w
        y0 = scene.horizon + rng.uniform(0.05, 0.5) * (h - scene.horizon)
        pts = np.array([[x0, y0], [x0 + rng.uniform(0.1, 0.6) * w, y0], [x0 + rng.uniform(0.3, 1.2) * w, h],
                        [x0 - rng.uniform(0.0, 0.5) * w, h]])
        cv2.fillPoly(shadow, [np.round(pts).astype(np.int32)], float(rng.uniform(0.45, 0.75)))
    gain *= shadow
    cast = np.array([rng.uniform(0.9, 1.1) for _ in range(3)], np.float32) * rng.uniform(0.6, 1.3)
    image = scene.image.astype(np.float32)
    image *= gain[..., None]
    image *= cast
    if rng.random() < 0.6:                                             # defocus / motion softness
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.2, 1.3) * max(w / 1024.0, 0.35))
    image += (rng.standard_normal((h, w), dtype=np.float32) * np.float32(rng.uniform(1.0, 6.0)))[..., None]
    image = np.clip(image, 0, 255).astype(np.uint8)
    gamma = rng.uniform(0.75, 1.3)
    image = cv2.LUT(image, np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:                                             # ego-vehicle bonnet (void)
        cx, ry = w * rng.uniform(0.4, 0.6), h * rng.uniform(0.05, 0.12)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (int(cx), int(h + ry * 0.3)), (int(w * 0.75), int(ry)), 0, 180, 360, 1, -1)
        image[mask > 0] = jitter(rng, (40, 40, 45), 15)
        scene.label[mask > 0] = EGO
    border = int(rng.integers(0, 3)) if rng.random() < 0.3 else 0      # rectification border (void)
    if border:
        for region in (np.s_[:border], np.s_[-border:], np.s_[:, :border], np.s_[:, -border:]):
            image[region] = 0
            scene.label[region] = BORDER
    return image
