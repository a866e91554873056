"""Things standing on the street: vehicles, people on foot and on two wheels, poles, signs, trees.

Each drawer takes the ``Scene``, a ground position (X, z) in metres and a generator, and paints
image and label. Shapes are drawn in a front-parallel "billboard" frame (u right, v up, metres)
scaled by ``focal / z``; vehicles driving along the street also get a perspective side face,
so sizes, silhouettes and context (rider on a bike, tram on rails, sign on a pole) separate
classes whose colours overlap on purpose.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from .synthetic_scene import (BICYCLE, BUS, CAR, LIGHT, MOTORCYCLE, PERSON, POLE, RIDER, SIGN, STATIC, TRAIN,
                              TRUCK, VEGETATION, Scene, jitter)

Color = Tuple[int, int, int]
VEHICLE_COLORS = [(30, 30, 30), (200, 200, 200), (235, 235, 235), (120, 120, 125), (40, 40, 160),
                  (150, 60, 20), (40, 110, 40), (30, 60, 110), (20, 180, 220), (80, 80, 90)]
CLOTHES = [(30, 30, 30), (90, 60, 40), (160, 120, 70), (40, 40, 140), (200, 200, 200), (60, 90, 60),
           (120, 40, 100), (70, 70, 75), (30, 90, 180)]
SKIN = [(150, 180, 225), (110, 140, 190), (60, 90, 130), (170, 195, 235)]


def dark(color: Color, factor: float) -> Color:
    return int(color[0] * factor), int(color[1] * factor), int(color[2] * factor)


class Billboard:
    """Front-parallel drawing frame standing on the ground at (x, z); ``mirror`` flips u."""

    def __init__(self, scene: Scene, x: float, z: float, mirror: bool = False) -> None:
        self.scene = scene
        self.s = scene.scale(z)
        self.x0, self.y0 = scene.project(x, 0.0, z)
        self.m = -1.0 if mirror else 1.0

    def pts(self, uv: Sequence[Sequence[float]]) -> np.ndarray:
        uv = np.asarray(uv, np.float64)
        return np.stack([self.x0 + self.m * self.s * uv[:, 0], self.y0 - self.s * uv[:, 1]], 1)

    def poly(self, uv: Sequence[Sequence[float]], color: Color, label_id: int = -1) -> None:
        self.scene.polys([self.pts(uv)], color, label_id)

    def rect(self, u0: float, v0: float, u1: float, v1: float, color: Color, label_id: int = -1) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], color, label_id)

    def circle(self, u: float, v: float, radius: float, color: Color, label_id: int = -1,
               thickness: float = -1.0) -> None:
        (cx, cy), = self.pts([(u, v)])
        self.scene.ellipse((cx, cy), (radius * self.s, radius * self.s), color, label_id,
                           -1 if thickness < 0 else thickness * self.s)

    def segments(self, pairs: Sequence[Tuple[Tuple[float, float], Tuple[float, float]]], thickness: float,
                 color: Color, label_id: int = -1) -> None:
        segs = np.stack([self.pts(pair) for pair in pairs])
        self.scene.lines(segs, thickness * self.s, color, label_id)


# -- people -------------------------------------------------------------------------------------
def draw_person(scene: Scene, x: float, z: float, rng: np.random.Generator, label_id: int = PERSON,
                pose: str = "", hip: Tuple[float, float] = (0.0, 0.0), mirror: bool = False) -> None:
    """A person; ``pose``: 'walk' (side), 'front', 'ride_side' / 'ride_back' (hips at ``hip``).

    Riders are drawn with ``label_id=RIDER``; pedestrians pick 'walk' or 'front' at random.
    """
    b = Billboard(scene, x, z, mirror)
    height = rng.uniform(1.55, 1.95)
    top, legs, skin = jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 20), \
        jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 20), SKIN[rng.integers(len(SKIN))]
    pose = pose or ("walk" if rng.random() < 0.5 else "front")
    riding = pose.startswith("ride")
    hu, hv = hip if riding else (0.0, 0.48 * height)
    leg_w = 0.14 * height
    if pose == "ride_side":
        b.segments([((hu, hv), (hu + 0.25, hv - 0.35)), ((hu + 0.25, hv - 0.35), (hu + 0.1, hv - 0.75))],
                   leg_w, legs, label_id)
    elif pose == "walk":
        stride = rng.uniform(-0.25, 0.25)
        b.segments([((hu, hv), (hu + stride, 0.04)), ((hu, hv), (hu - stride, 0.04))], leg_w, legs, label_id)
    else:                                                    # 'front' / 'ride_back': legs apart
        foot = max(0.0, hv - 0.75) if riding else 0.0
        b.rect(hu - 0.2, foot, hu - 0.04, hv, legs, label_id)
        b.rect(hu + 0.04, foot, hu + 0.2, hv, legs, label_id)
    lean = 0.18 if pose == "ride_side" else 0.0
    shoulder_v = hv + 0.34 * height
    width = 0.2 if pose in ("walk", "ride_side") else 0.24
    b.poly([(hu - width, hv), (hu + width, hv), (hu + width * 0.95 + lean, shoulder_v),
            (hu - width * 0.9 + lean, shoulder_v)], top, label_id)
    if pose == "ride_side":
        arms = [((hu + lean, shoulder_v - 0.05), (hu + lean + 0.35, shoulder_v - 0.25))]
    elif pose == "walk":
        arms = [((hu, shoulder_v - 0.05), (hu + rng.uniform(-0.15, 0.15), hv - 0.02))]
    else:
        arms = [((hu + sign * width, shoulder_v - 0.05), (hu + sign * (width + 0.08), hv + (0.2 if riding else 0.0)))
                for sign in (-1, 1)]
    b.segments(arms, 0.09, dark(top, 0.9), label_id)
    b.circle(hu + lean, shoulder_v + 0.13, 0.12, skin, label_id)
    if rng.random() < (0.7 if riding else 0.4):                              # hair / helmet / hat
        b.poly([(hu + lean - 0.13, shoulder_v + 0.14), (hu + lean + 0.13, shoulder_v + 0.14),
                (hu + lean + 0.1, shoulder_v + 0.27), (hu + lean - 0.1, shoulder_v + 0.27)],
               jitter(rng, CLOTHES[rng.integers(len(CLOTHES))], 20), label_id)
    if not riding and rng.random() < 0.25:                                   # bag
        b.rect(hu + 0.18, hv - 0.1, hu + 0.42, hv + 0.25, jitter(rng, (40, 60, 90), 20), label_id)


def draw_two_wheeler(scene: Scene, x: float, z: float, rng: np.random.Generator, motor: bool) -> None:
    """Bicycle or motorcycle seen from the side or from behind, usually with a rider on it."""
    label_id = MOTORCYCLE if motor else BICYCLE
    mirror = rng.random() < 0.5
    b = Billboard(scene, x, z, mirror)
    frame = jitter(rng, VEHICLE_COLORS[rng.integers(len(VEHICLE_COLORS))], 25)
    ridden = rng.random() < 0.85
    if rng.random() < 0.65:                                  # side view: bike first, rider on top
        radius, base = (0.31, 0.75) if motor else (0.34, 0.55)
        for u in (-base, base):
            b.circle(u, radius, radius - 0.03, (25, 25, 25), label_id, 0.1 if motor else 0.035)
        if motor:
            b.poly([(-0.55, 0.35), (0.35, 0.3), (0.55, 0.75), (0.15, 0.95), (-0.5, 0.85)], frame, label_id)
            b.rect(-0.25, 0.25, 0.25, 0.55, (60, 60, 65), label_id)
            b.segments([((0.5, 0.8), (0.75, radius)), ((0.5, 0.8), (0.45, 1.1))], 0.06, (90, 90, 90), label_id)
        else:
            b.segments([((-base, radius), (-0.05, radius)), ((-0.05, radius), (-0.15, 0.9)),
                        ((-0.15, 0.9), (-base, radius)), ((-0.05, radius), (0.4, 0.85)),
                        ((-0.15, 0.85), (0.4, 0.85)), ((0.4, 0.85), (base, radius)), ((0.4, 0.85), (0.38, 1.0))],
                       0.045, frame, label_id)
            b.rect(-0.28, 0.92, -0.05, 0.97, (20, 20, 20), label_id)
        if ridden:
            draw_person(scene, x, z, rng, RIDER, "ride_side", (-0.2, 0.95) if motor else (-0.15, 0.97), mirror)
        return
    # seen from behind: handlebar and body behind the rider, rear wheel and light in front
    b.segments([((-0.32, 1.05), (0.32, 1.05))], 0.05, (60, 60, 60), label_id)
    if motor:
        b.rect(-0.35, 0.4, 0.35, 0.95, frame, label_id)
    if ridden:
        draw_person(scene, x, z, rng, RIDER, "ride_back", (0.0, 0.95 if motor else 0.9), mirror)
    tire = 0.14 if motor else 0.06
    b.rect(-tire / 2, 0.0, tire / 2, 0.66, (25, 25, 25), label_id)
    b.rect(-0.1 - tire / 2, 0.62, 0.1 + tire / 2, 0.72, frame, label_id)            # mudguard / rack
    b.rect(-0.05, 0.66, 0.05, 0.71, (30, 30, 210), label_id)                         # rear light


# -- vehicles -----------------------------------------------------------------------------------
VEHICLES = {  # width, length, body height, colours drawn from
    CAR: (1.8, 4.4, 1.45), TRUCK: (2.45, 8.0, 3.4), BUS: (2.55, 12.0, 3.1), TRAIN: (2.6, 28.0, 3.5)}


def draw_vehicle(scene: Scene, kind: int, x: float, z: float, rng: np.random.Generator, along: bool) -> None:
    """``along``: driving along the street (rear face + side face); else crossing (side view)."""
    width, length, height = VEHICLES[kind]
    length *= rng.uniform(0.9, 1.1)
    if kind == BUS:
        body = jitter(rng, [(40, 40, 200), (30, 200, 230), (200, 200, 200), (160, 90, 30)][rng.integers(4)], 20)
    elif kind == TRAIN:
        body = jitter(rng, [(235, 235, 235), (40, 40, 190), (60, 160, 220), (110, 110, 110)][rng.integers(4)], 15)
    else:
        body = jitter(rng, VEHICLE_COLORS[rng.integers(len(VEHICLE_COLORS))], 18)
    glass = jitter(rng, (70, 55, 45), 12)
    if along:
        visible = x - np.sign(x) * width / 2 if abs(x) > width / 2 else None
        if visible is not None:
            z1 = z + length
            scene.polys([scene.facade(visible, 0.25, height * (0.68 if kind == CAR else 1.0), z, z1)],
                        dark(body, 0.75), kind)
            if kind == CAR:
                scene.polys([scene.facade(visible, 0.95, 1.38, z + 0.25 * length, z + 0.8 * length)], glass, kind)
            elif kind in (BUS, TRAIN):
                scene.polys([scene.facade(visible, 1.2, height - 0.5, z + 0.4, z1 - 0.4)], glass, kind)
            else:
                scene.polys([scene.facade(visible, 1.4, 2.4, z1 - 1.9, z1 - 0.3)], glass, kind)
            for zw in (z + 0.18 * length, z + 0.82 * length):
                r = 0.33 if kind == CAR else 0.5
                scene.polys([scene.facade(visible, 0.0, 2 * r, zw - r, zw + r)], (22, 22, 22), kind)
        b = Billboard(scene, x, z)
        half = width / 2
        for u in (-half + 0.05, half - 0.35):
            b.rect(u, 0.0, u + 0.3, 0.4, (22, 22, 22), kind)
        if kind == CAR:
            b.poly([(-half, 0.25), (half, 0.25), (half, 0.95), (half - 0.2, 1.02), (-half + 0.2, 1.02),
                    (-half, 0.95)], body, kind)
            b.poly([(-half + 0.12, 1.0), (half - 0.12, 1.0), (half - 0.32, height), (-half + 0.32, height)], body, kind)
            b.poly([(-half + 0.22, 1.04), (half - 0.22, 1.04), (half - 0.38, height - 0.06),
                    (-half + 0.38, height - 0.06)], glass, kind)
            light_v = 0.75
        else:
            b.rect(-half, 0.3, half, height, body, kind)
            if kind in (BUS, TRAIN):
                b.rect(-half + 0.15, 1.3, half - 0.15, height - 0.35, glass, kind)
            else:
                b.segments([((0.0, 0.35), (0.0, height - 0.1))], 0.03, dark(body, 0.6), kind)
            light_v = 0.6
        for u in (-half + 0.08, half - 0.33):
            b.rect(u, light_v, u + 0.25, light_v + 0.12, (30, 30, 210), kind)
        return
    mirror = rng.random() < 0.5
    b = Billboard(scene, x, z, mirror)
    half = length / 2
    if kind == CAR:
        b.poly([(-half, 0.3), (-half, 0.85), (-0.75 * half, 1.0), (-0.4 * half, 1.0), (-0.2 * half, height),
                (0.5 * half, height), (0.7 * half, 1.0), (half, 0.9), (half, 0.3)], body, kind)
        b.poly([(-0.33 * half, 1.03), (-0.17 * half, height - 0.06), (0.47 * half, height - 0.06),
                (0.62 * half, 1.03)], glass, kind)
        b.segments([((0.15 * half, 1.0), (0.15 * half, height))], 0.06, body, kind)
        wheels, r = (-0.62 * half, 0.62 * half), 0.33
    else:
        b.rect(-half, 0.35, half, height, body, kind)
        if kind == TRUCK:
            b.rect(half - 2.2, 0.35, half, 2.8, dark(body, 0.8), kind)
            b.rect(-half, 0.35, half - 2.3, height, jitter(rng, (200, 200, 200), 40), kind)
            b.rect(half - 1.6, 1.5, half - 0.2, 2.5, glass, kind)
            wheels, r = (-0.7 * half, -0.45 * half, 0.75 * half), 0.5
        else:
            windows = np.arange(-half + 0.6, half - 1.2, 1.6 if kind == BUS else 1.9)
            for u in windows:
                b.rect(u, 1.3, u + (1.3 if kind == BUS else 1.4), height - 0.45, glass, kind)
            if kind == TRAIN:
                b.segments([((-2.0, height), (-0.5, height + 0.9)), ((-0.5, height + 0.9), (1.0, height))],
                           0.05, (40, 40, 40), kind)
            wheels, r = (-0.7 * half, 0.7 * half), 0.5
    for u in wheels:
        b.circle(u, r, r, (22, 22, 22), kind)
        b.circle(u, r, r * 0.45, (140, 140, 140), kind)


# -- street furniture ---------------------------------------------------------------------------
def draw_pole(scene: Scene, x: float, z: float, rng: np.random.Generator) -> None:
    b = Billboard(scene, x, z)
    metal = jitter(rng, (110, 110, 115), 25)
    kind = rng.choice(["plain", "lamp", "sign", "light"], p=[0.2, 0.3, 0.3, 0.2])
    height = rng.uniform(3.0, 4.0) if kind in ("sign", "light") else rng.uniform(5.0, 8.5)
    radius = rng.uniform(0.06, 0.11)
    b.rect(-radius, 0.0, radius, height, metal, POLE)
    if kind == "lamp":
        reach = -np.sign(x) * rng.uniform(0.8, 2.0)
        b.segments([((0.0, height - 0.1), (reach, height + 0.2))], 0.08, metal, POLE)
        b.rect(reach - 0.3, height + 0.05, reach + 0.3, height + 0.25, dark(metal, 0.8), POLE)
    elif kind == "sign":
        color = [(40, 40, 200), (160, 90, 20), (30, 180, 230)][rng.integers(3)]
        shape, v = rng.integers(3), height - 0.4
        if shape == 0:
            b.circle(0.0, v, 0.33, color, SIGN)
            b.circle(0.0, v, 0.22, (235, 235, 235), SIGN)
        elif shape == 1:
            b.poly([(-0.4, v - 0.3), (0.4, v - 0.3), (0.0, v + 0.38)], color, SIGN)
            b.poly([(-0.24, v - 0.2), (0.24, v - 0.2), (0.0, v + 0.2)], (235, 235, 235), SIGN)
        else:
            b.rect(-0.35, v - 0.35, 0.35, v + 0.35, color, SIGN)
            b.rect(-0.2, v - 0.05, 0.2, v + 0.05, (235, 235, 235), SIGN)
    elif kind == "light":
        v = height
        b.rect(-0.18, v - 0.1, 0.18, v + 0.85, jitter(rng, (30, 30, 30), 8), LIGHT)
        lit = rng.integers(3)
        for index, color in enumerate([(40, 40, 230), (40, 200, 240), (60, 220, 60)]):
            b.circle(0.0, v + 0.68 - 0.27 * index, 0.09, color if index == lit else dark(color, 0.3), LIGHT)


def draw_tree(scene: Scene, x: float, z: float, rng: np.random.Generator) -> None:
    b = Billboard(scene, x, z)
    trunk_h = rng.uniform(1.5, 3.0)
    b.rect(-0.12, 0.0, 0.12, trunk_h + 0.5, jitter(rng, (40, 60, 80), 12), VEGETATION)
    leaves = jitter(rng, (50, 110, 60), 22)
    size = rng.uniform(1.5, 3.2)
    for _ in range(int(rng.integers(3, 7))):
        b.circle(rng.uniform(-0.6, 0.6) * size, trunk_h + size * rng.uniform(0.6, 1.4), size * rng.uniform(0.5, 0.8),
                 jitter(rng, leaves, 10), VEGETATION)


def draw_bin(scene: Scene, x: float, z: float, rng: np.random.Generator) -> None:
    b = Billboard(scene, x, z)
    b.rect(-0.3, 0.0, 0.3, rng.uniform(0.8, 1.2), jitter(rng, (60, 90, 60), 30), STATIC)
