"""One synthetic street scene: roadside blocks, traffic, pedestrians; returns image + labelIds.

``render_street(rng, height, width)`` -> (BGR uint8 image, uint8 Cityscapes label ids). Depends
only on the generator, so a seed fixes the scene. Roadside blocks along both sides are buildings
(window grids, shop fronts, end walls), walls, fences (see-through lattices), trees and terrain
gaps; traffic and people are sorted by depth so near things occlude far ones.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import numpy as np

from .synthetic_objects import draw_bin, draw_pole, draw_tree, draw_two_wheeler, draw_vehicle, draw_person
from .synthetic_scene import (BUILDING, BUS, CAR, FENCE, TERRAIN, TRAIN, TRUCK, VEGETATION, WALL, Z_FAR, Scene,
                              finish, jitter, paint_sky_and_ground, paint_skyline, paint_street)

FACADES = [(170, 190, 210), (140, 150, 160), (90, 100, 150), (200, 205, 210), (120, 130, 130), (60, 80, 120)]


def _windows(scene: Scene, plane_x: float, z0: float, z1: float, top: float, rng: np.random.Generator) -> None:
    """Window grid on the facade X = plane_x (perspective-correct: spaced in depth, not pixels)."""
    floor_h, spacing = rng.uniform(2.8, 3.4), rng.uniform(2.0, 3.2)
    win_w, win_h = spacing * rng.uniform(0.35, 0.6), floor_h * rng.uniform(0.35, 0.55)
    floors = np.arange(floor_h + 0.8, top - win_h - 0.3, floor_h)
    columns = np.arange(z0 + 0.6, z1 - win_w, spacing)
    if len(floors) == 0 or len(columns) == 0:
        return
    vv, zz = np.meshgrid(floors, columns, indexing="ij")
    vv, zz = vv.ravel(), zz.ravel()
    corners = np.stack([scene.project(plane_x, v, z) for v, z in
                        ((vv, zz), (vv, zz + win_w), (vv + win_h, zz + win_w), (vv + win_h, zz))], 1)
    lit = rng.random(len(corners)) < rng.uniform(0.0, 0.3)
    glass = jitter(rng, (80, 70, 60), 20)
    scene.polys(list(corners[~lit]), glass)
    scene.polys(list(corners[lit]), jitter(rng, (150, 200, 225), 15))
    if rng.random() < 0.5:                                             # shop windows at street level
        shop = [scene.facade(plane_x, 0.4, 2.4, z, z + spacing * 0.8) for z in columns]
        scene.polys(shop, jitter(rng, (60, 50, 45), 15))


def _building(scene: Scene, side: int, plane_x: float, z0: float, z1: float, rng: np.random.Generator) -> None:
    top = rng.uniform(7.0, 32.0)
    color = jitter(rng, FACADES[rng.integers(len(FACADES))], 22)
    end = scene.project([plane_x, plane_x + side * 14.0, plane_x + side * 14.0, plane_x],
                        [0.0, 0.0, top, top], [z0] * 4)
    scene.polys([end], tuple(int(c * 0.82) for c in color), BUILDING)
    scene.polys([scene.facade(plane_x, 0.0, top, z0, z1)], color, BUILDING)
    scene.polys([scene.facade(plane_x, top - 0.6, top, z0, z1)], tuple(int(c * 0.7) for c in color))
    _windows(scene, plane_x, z0, z1, top, rng)


def _fence(scene: Scene, plane_x: float, z0: float, z1: float, rng: np.random.Generator) -> None:
    height = rng.uniform(1.0, 2.2)
    metal = jitter(rng, (110, 115, 110), 30)
    posts = np.arange(z0, z1, rng.uniform(1.8, 3.0))
    mesh = np.arange(z0, z1, rng.uniform(0.12, 0.3))
    segs = [scene.project([plane_x, plane_x], [0.0, height], [z, z]) for z in mesh]
    segs += [scene.project([plane_x, plane_x], [v, v], [z0, z1]) for v in (0.1, height * 0.5, height)]
    scene.lines(np.stack(segs), 1, metal, FENCE)
    for z in posts:
        scene.polys([scene.facade(plane_x, 0.0, height + 0.1, z, z + 0.12)], metal, FENCE)


def draw_roadside(scene: Scene, street: dict, rng: np.random.Generator) -> None:
    """Blocks along both sides, drawn far to near."""
    blocks: List[Tuple[float, Callable[[], None]]] = []
    for side, edge in ((-1, street["left"] - street["walk_l"]), (1, street["right"] + street["walk_r"])):
        z = scene.z_min * rng.uniform(0.3, 0.9)
        while z < Z_FAR * 0.6:
            length = rng.uniform(6.0, 30.0) * (1.0 + z / 60.0)
            kind = rng.choice(["building", "wall", "fence", "trees", "gap"], p=[0.5, 0.12, 0.12, 0.16, 0.1])
            blocks.append((z, _roadside_block(scene, side, edge, z, z + length, str(kind), rng)))
            z += length
    for _, draw in sorted(blocks, key=lambda item: -item[0]):
        draw()


def _roadside_block(scene: Scene, side: int, edge: float, z0: float, z1: float, kind: str,
                    rng: np.random.Generator) -> Callable[[], None]:
    setback = 0.0 if rng.random() < 0.6 else rng.uniform(1.0, 6.0)
    sub = np.random.default_rng(rng.integers(2 ** 63))                # fixed now, drawn later

    def trees(x_from: float, x_to: float) -> None:
        for z in np.sort(sub.uniform(z0, z1, int(sub.integers(1, 4))))[::-1]:
            draw_tree(scene, sub.uniform(min(x_from, x_to), max(x_from, x_to)), z, sub)

    def draw() -> None:
        if kind == "building":
            if setback:
                scene.polys([scene.ground_quad(edge, edge + side * setback, z0, z1)],
                            jitter(sub, (60, 120, 110), 20), TERRAIN)
            _building(scene, side, edge + side * setback, z0, z1, sub)
        elif kind == "wall":
            if sub.random() < 0.5:
                _building(scene, side, edge + side * sub.uniform(6, 12), z0, z1, sub)
            else:
                trees(edge + side * 2.0, edge + side * 6.0)
            color = jitter(sub, FACADES[sub.integers(len(FACADES))], 25)
            scene.polys([scene.facade(edge, 0.0, sub.uniform(1.0, 3.5), z0, z1)], color, WALL)
        elif kind == "fence":
            if sub.random() < 0.5:
                trees(edge + side * 1.5, edge + side * 6.0)
            _fence(scene, edge, z0, z1, sub)
        elif kind == "trees":
            trees(edge + side * 0.5, edge + side * 5.0)
            if sub.random() < 0.5:                                     # hedge
                scene.polys([scene.facade(edge + side * 0.4, 0.0, sub.uniform(0.6, 1.4), z0, z1)],
                            jitter(sub, (45, 100, 55), 20), VEGETATION)
    return draw


def populate(scene: Scene, street: dict, rng: np.random.Generator) -> List[Tuple[float, Callable[[], None]]]:
    """Depth-tagged drawers for traffic, people, poles, street trees and bins."""
    left, right = street["left"], street["right"]
    near = scene.z_min * 1.05
    mid = scene.z_min * 1.6                                            # keep traffic off the bonnet
    items: List[Tuple[float, Callable[[], None]]] = []

    def depth(far: float, start: float = near) -> float:
        return float(start * np.exp(rng.uniform(0.0, np.log(max(far / start, 1.01)))))

    def add(z: float, fn: Callable, *args) -> None:
        sub = np.random.default_rng(rng.integers(2 ** 63))
        items.append((z, lambda: fn(*args, sub)))

    lanes = np.arange(left + 1.6, right - 1.0, 3.2)
    for kind, count in ((CAR, rng.integers(2, 15)), (TRUCK, rng.integers(0, 3)), (BUS, rng.integers(0, 2))):
        for _ in range(int(count)):
            z = depth(90.0, mid)
            along = rng.random() < 0.75
            x = (lanes[rng.integers(len(lanes))] + rng.uniform(-0.4, 0.4)) if along else rng.uniform(left, right)
            add(z, lambda x_, z_, k_, a_, r_: draw_vehicle(scene, k_, x_, z_, r_, a_), x, z, kind, along)
    if street["rail"] is not None and rng.random() < 0.8:
        z = depth(60.0)
        add(z, lambda x_, z_, r_: draw_vehicle(scene, TRAIN, x_, z_, r_, True), street["rail"], z)
    for _ in range(int(rng.integers(0, 5))):
        z, motor = depth(60.0), rng.random() < 0.35
        x = rng.choice([left + 0.8, right - 0.8]) + rng.uniform(-0.3, 0.3) if rng.random() < 0.7 \
            else rng.uniform(left, right)
        add(z, lambda x_, z_, m_, r_: draw_two_wheeler(scene, x_, z_, r_, m_), x, z, motor)
    for _ in range(int(rng.integers(1, 13))):
        z = depth(60.0)
        if rng.random() < 0.8:
            x = rng.choice([rng.uniform(left - street["walk_l"], left), rng.uniform(right, right + street["walk_r"])])
        else:
            x = rng.uniform(left, right)
        add(z, lambda x_, z_, r_: draw_person(scene, x_, z_, r_), x, z)
    for side, curb in ((-1, left), (1, right)):
        z = near * rng.uniform(1.0, 3.0)
        while z < 120.0:
            add(z, lambda x_, z_, r_: draw_pole(scene, x_, z_, r_), curb + side * rng.uniform(0.3, 0.6), z)
            if rng.random() < 0.35:
                zt = z + rng.uniform(3.0, 8.0)
                add(zt, lambda x_, z_, r_: draw_tree(scene, x_, z_, r_), curb + side * rng.uniform(0.8, 1.6), zt)
            if rng.random() < 0.2:
                zb = z + rng.uniform(1.0, 4.0)
                add(zb, lambda x_, z_, r_: draw_bin(scene, x_, z_, r_), curb + side * rng.uniform(1.0, 2.0), zb)
            z += rng.uniform(10.0, 35.0) * (1.0 + z / 50.0)
    return items


def render_street(rng: np.random.Generator, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """BGR uint8 (H, W, 3) image and uint8 (H, W) Cityscapes label ids of one random street."""
    scene = Scene(rng, height, width)
    paint_sky_and_ground(scene)
    paint_skyline(scene)
    street = paint_street(scene)
    draw_roadside(scene, street, rng)
    for _, draw in sorted(populate(scene, street, rng), key=lambda item: -item[0]):
        draw()
    image = finish(scene)
    return image, scene.label
