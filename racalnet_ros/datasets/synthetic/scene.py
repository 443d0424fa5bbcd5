"""Procedural street scene: triangle meshes with a material, colour and velocity per object.

World frame = the ego vehicle's frame at the camera's timestamp: x forward along the road, y left, z up, metres;
the ground is z = 0. The road runs along x. Objects are boxes, cylinders and spheres whose templates come from
Open3D's mesh factories (`open3d.geometry.TriangleMesh.create_*`); ray casting uses
`open3d.t.geometry.RaycastingScene` (see `Scene.raycaster`), never hand-written intersection code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from .config import SynthConfig

# --------------------------------------------------------------------------------------------------- materials
GROUND, ROAD, SIDEWALK, BUILDING, CAR, GLASS, TIRE, CLOTH, SKIN, POLE, TRUNK, FOLIAGE, METAL = range(13)
MATERIAL_NAMES = ("ground", "road", "sidewalk", "building", "car", "glass", "tire", "cloth", "skin", "pole",
                  "trunk", "foliage", "metal")
#: Radar detection weight of a ray hit (relative chance that the radar reports a detection in that angular cell):
#: metal (cars, poles, rails) near certain, facades, trunks and crowns often, people sometimes, flat ground rarely
#: (mostly specular away from the radar). Calibrated on the class shares of the Astyx 6455 (docs/synthetic.md).
MATERIAL_DETECTION = np.array([0.25, 0.05, 0.15, 1.0, 0.35, 0.3, 0.3, 0.3, 0.3, 1.0, 0.5, 0.25, 1.0], np.float32)
#: mean radar power above the detection floor (dB; the excess is exponential) by material: metal and facades strong,
#: crowns medium, flat ground weak (calibrated on the Astyx 6455's Mag per class, docs/synthetic.md)
MATERIAL_POWER_DB = np.array([5.0, 4.0, 5.0, 12.0, 11.0, 9.0, 9.0, 6.0, 6.0, 12.0, 9.0, 9.0, 13.0], np.float32)
#: radar return class of each material, an index into radar_stats.CLASSES (ground, vegetation, vehicle, other)
MATERIAL_CLASS = np.array([0, 0, 0, 3, 2, 2, 2, 3, 3, 3, 1, 1, 3], np.int8)


@lru_cache(maxsize=None)
def _template(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Unit mesh templates from Open3D: box [-0.5, 0.5]^3, cylinder radius 1 / height 1 along z, sphere radius 1."""
    import open3d as o3d

    if kind == "box":
        m = o3d.geometry.TriangleMesh.create_box(1.0, 1.0, 1.0)
        v = np.asarray(m.vertices) - 0.5
    elif kind == "cylinder":
        m = o3d.geometry.TriangleMesh.create_cylinder(1.0, 1.0, resolution=10, split=1)
        v = np.asarray(m.vertices)
    elif kind == "sphere":
        m = o3d.geometry.TriangleMesh.create_sphere(1.0, resolution=6)
        v = np.asarray(m.vertices)
    else:
        raise ValueError(kind)
    return v.astype(np.float32), np.asarray(m.triangles, dtype=np.int32)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


@dataclass
class Scene:
    """All objects of one frame as one triangle soup.

    vertices: V x 3 float32 (world, at t = 0); triangles: T x 3 int32; tri_object: T int32 object of each triangle;
    vert_object: V int32. Per object (O): material O int, color O x 3 float32 (albedo 0..1), velocity O x 3 float32
    (m/s, world). Road geometry: road_y = (right edge, left edge) in y, centre_y of the lane marking. boxes: K x 7
    vehicle boxes (centre, length, width, height, yaw; world, t = 0) moving with box_velocity (K x 3).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    tri_object: np.ndarray
    vert_object: np.ndarray
    material: np.ndarray
    color: np.ndarray
    velocity: np.ndarray
    road_y: tuple[float, float]
    centre_y: float
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    box_velocity: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))

    def boxes_at(self, t: float) -> np.ndarray:
        """Vehicle boxes K x 7 (centre x, y, z, length, width, height, yaw; world) at time t."""
        b = self.boxes.copy()
        b[:, :3] += self.box_velocity * np.float32(t)
        return b

    def vertices_at(self, t: float) -> np.ndarray:
        """Vertices at time t seconds (objects move with constant velocity)."""
        if t == 0.0:
            return self.vertices
        return (self.vertices + self.velocity[self.vert_object] * np.float32(t)).astype(np.float32)

    def raycaster(self, t: float = 0.0):
        """An Open3D RaycastingScene of the scene at time t (one geometry; primitive ids index `triangles`)."""
        import open3d as o3d

        rc = o3d.t.geometry.RaycastingScene()
        rc.add_triangles(o3d.core.Tensor(np.ascontiguousarray(self.vertices_at(t))),
                         o3d.core.Tensor(np.ascontiguousarray(self.triangles.astype(np.uint32))))
        return rc

    @property
    def num_objects(self) -> int:
        return int(self.material.shape[0])


class SceneBuilder:
    """Accumulates primitives (one object id each, unless `object_id` is given to join parts of one object)."""

    def __init__(self) -> None:
        self._v: list[np.ndarray] = []
        self._t: list[np.ndarray] = []
        self._o: list[np.ndarray] = []
        self._nv = 0
        self.material: list[int] = []
        self.color: list[np.ndarray] = []
        self.velocity: list[np.ndarray] = []
        self.boxes: list[tuple] = []          # vehicles: (cx, cy, cz, length, width, height, yaw, vx, vy, vz)

    def new_object(self, material: int, color, velocity=(0.0, 0.0, 0.0)) -> int:
        self.material.append(material)
        self.color.append(np.asarray(color, np.float32))
        self.velocity.append(np.asarray(velocity, np.float32))
        return len(self.material) - 1

    def _add(self, kind: str, scale, center, yaw: float, obj: int) -> None:
        v, t = _template(kind)
        v = (v * np.asarray(scale, np.float32)) @ _rot_z(yaw).T + np.asarray(center, np.float32)
        self._v.append(v)
        self._t.append(t + self._nv)
        self._o.append(np.full(len(t), obj, np.int32))
        self._nv += len(v)

    def box(self, center, size, obj: int, yaw: float = 0.0) -> None:
        self._add("box", size, center, yaw, obj)

    def cylinder(self, base, radius: float, height: float, obj: int) -> None:
        c = np.asarray(base, np.float32) + np.array([0, 0, height / 2], np.float32)
        self._add("cylinder", (radius, radius, height), c, 0.0, obj)

    def wheel(self, center, radius: float, width: float, obj: int, yaw: float) -> None:
        """A cylinder lying along the local y axis (a car wheel)."""
        v, t = _template("cylinder")
        v = v * np.array([radius, radius, width], np.float32)
        v = v[:, [0, 2, 1]] * np.array([1, -1, 1], np.float32)  # z axis -> y axis (proper rotation)
        v = v @ _rot_z(yaw).T + np.asarray(center, np.float32)
        self._v.append(v.astype(np.float32))
        self._t.append(t + self._nv)
        self._o.append(np.full(len(t), obj, np.int32))
        self._nv += len(v)

    def ellipsoid(self, center, radii, obj: int) -> None:
        self._add("sphere", radii, center, 0.0, obj)

    def build(self, road_y, centre_y) -> Scene:
        verts = np.concatenate(self._v).astype(np.float32)
        tris = np.concatenate(self._t).astype(np.int32)
        tri_obj = np.concatenate(self._o)
        vert_obj = np.zeros(len(verts), np.int32)
        vert_obj[tris.reshape(-1)] = np.repeat(tri_obj, 3)
        return Scene(verts, tris, tri_obj, vert_obj, np.asarray(self.material, np.int32),
                     np.stack(self.color).astype(np.float32), np.stack(self.velocity).astype(np.float32),
                     tuple(road_y), float(centre_y),
                     np.asarray([b[:7] for b in self.boxes], np.float32).reshape(-1, 7),
                     np.asarray([b[7:] for b in self.boxes], np.float32).reshape(-1, 3))


CAR_COLOURS = np.array([[0.85, 0.85, 0.85], [0.1, 0.1, 0.12], [0.6, 0.05, 0.05], [0.1, 0.2, 0.55], [0.5, 0.5, 0.52],
                        [0.9, 0.75, 0.1], [0.15, 0.35, 0.15], [0.95, 0.95, 0.97], [0.35, 0.2, 0.1]], np.float32)


def _add_car(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, yaw: float, velocity) -> None:
    L, W = rng.uniform(3.9, 4.8), rng.uniform(1.7, 1.95)
    colour = CAR_COLOURS[rng.integers(len(CAR_COLOURS))] * rng.uniform(0.85, 1.1)
    body = b.new_object(CAR, np.clip(colour, 0, 1), velocity)
    glass = b.new_object(GLASS, (0.08, 0.1, 0.13), velocity)
    tire = b.new_object(TIRE, (0.04, 0.04, 0.04), velocity)
    r = rng.uniform(0.3, 0.36)
    b.box((x, y, r + 0.4), (L, W, 0.8), body, yaw)
    b.boxes.append((x, y, (r + 1.36) / 2, L, W, r + 1.36, yaw, *velocity))
    cab_l = L * rng.uniform(0.45, 0.6)
    off = rng.uniform(-0.4, 0.0)
    c, s = np.cos(yaw), np.sin(yaw)
    b.box((x + off * c, y + off * s, r + 0.8 + 0.28), (cab_l, W * 0.9, 0.56), glass, yaw)
    for sx in (-0.33, 0.33):
        for sy in (-0.5, 0.5):
            lx, ly = sx * L, sy * (W - 0.05)
            b.wheel((x + lx * c - ly * s, y + lx * s + ly * c, r), r, 0.22, tire, yaw)


def _add_pedestrian(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, velocity) -> None:
    h = rng.uniform(1.55, 1.9)
    shirt = rng.uniform(0.05, 0.9, 3)
    trousers = rng.uniform(0.05, 0.4, 3)
    legs = b.new_object(CLOTH, trousers, velocity)
    torso = b.new_object(CLOTH, shirt, velocity)
    head = b.new_object(SKIN, np.array([0.85, 0.65, 0.5]) * rng.uniform(0.45, 1.0), velocity)
    yaw = float(np.arctan2(velocity[1], velocity[0])) if np.any(velocity) else rng.uniform(0, np.pi)
    b.box((x, y, 0.45 * h / 2), (0.25, 0.35, 0.45 * h), legs, yaw)
    b.box((x, y, 0.45 * h + 0.2 * h), (0.28, 0.45, 0.4 * h), torso, yaw)
    b.ellipsoid((x, y, 0.92 * h), (0.11, 0.1, 0.13), head)


def build_scene(rng: np.random.Generator, cfg: SynthConfig, ego_speed: float) -> Scene:
    """A random street: ground, road with markings, kerbs/sidewalks, building rows with gaps, parked and moving
    cars, pedestrians, poles/street lamps and trees. The ego drives along +x at `ego_speed` in the lane at y = 0."""
    b = SceneBuilder()
    lane = 3.5
    right = -rng.uniform(1.6, 1.6 + lane)            # road edge right of the ego (y < 0)
    n_left = int(rng.integers(1, 4))
    left = right + lane * (n_left + 1) * rng.uniform(0.9, 1.1) + rng.uniform(0.0, 1.0)
    left = max(left, 1.8)
    centre = right + (left - right) * rng.uniform(0.35, 0.6)   # lane divider line (y)
    x0, x1 = -30.0, 260.0

    # ground (grass/dirt) and the road surface (textured with markings in render)
    g = b.new_object(GROUND, rng.uniform([0.25, 0.32, 0.12], [0.4, 0.45, 0.22]))
    b.box(((x0 + x1) / 2, 0, -0.1), (x1 - x0 + 400, 600, 0.2), g)
    road = b.new_object(ROAD, np.full(3, rng.uniform(0.22, 0.34)))
    b.box(((x0 + x1) / 2, (left + right) / 2, -0.04), (x1 - x0, left - right, 0.1), road)
    walk_w = [rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0)]
    for side, edge, w in ((-1, right, walk_w[0]), (1, left, walk_w[1])):
        sw = b.new_object(SIDEWALK, np.full(3, rng.uniform(0.5, 0.68)) * np.array([1.0, 0.98, 0.95]))
        b.box(((x0 + x1) / 2, edge + side * w / 2, 0.075), (x1 - x0, w, 0.15), sw)

    # building rows on both sides; on open roads a side has none or a few far back, and trees line the road
    open_road = bool(rng.random() < cfg.open_road_prob)
    for side, edge, w in ((-1, right, walk_w[0]), (1, left, walk_w[1])):
        if open_road and rng.random() < 0.5:
            continue
        x = x0 + rng.uniform(0, 10)
        while x < x1:
            width = rng.uniform(8, 35)
            setback = rng.uniform(15.0, 60.0) if open_road else (rng.uniform(0.0, 4.0) if rng.random() < 0.5 else 0.0)
            depth = rng.uniform(8, 20)
            height = rng.uniform(5, 30) if not open_road else rng.uniform(4, 15)
            hue = rng.choice([np.array([0.75, 0.62, 0.5]), np.array([0.6, 0.3, 0.22]), np.array([0.8, 0.8, 0.75]),
                              np.array([0.55, 0.55, 0.6]), np.array([0.85, 0.78, 0.6])])
            bo = b.new_object(BUILDING, np.clip(hue * rng.uniform(0.75, 1.1), 0, 1))
            yc = edge + side * (w + setback + depth / 2)
            b.box((x + width / 2, yc, height / 2), (width, depth, height), bo)
            x += width + (rng.uniform(2, 15) if rng.random() < 0.4 else 0.0) + (rng.uniform(10, 60) if open_road else 0)
    if open_road:
        for side, edge, w in ((-1, right, walk_w[0]), (1, left, walk_w[1])):
            if rng.random() < 0.8:      # a row of trees beside the sidewalk
                offset, spacing = rng.uniform(1.0, 6.0), rng.uniform(5.0, 12.0)
                for x in np.arange(x0 + rng.uniform(0, spacing), 160.0, spacing):
                    if rng.random() < 0.85:
                        _add_tree(b, rng, x + rng.uniform(-1, 1), edge + side * (w + offset + rng.uniform(-0.5, 0.5)),
                                  big=True)
            if rng.random() < 0.5:      # a wood edge further back: dense large crowns
                depth0 = rng.uniform(12.0, 40.0)
                for x in np.arange(x0, 200.0, rng.uniform(3.0, 6.0)):
                    _add_tree(b, rng, x, edge + side * (w + depth0 + rng.uniform(0, 8)), big=True)
            if rng.random() < 0.35:     # a metal guard rail on posts along the road edge
                rail = b.new_object(METAL, np.full(3, rng.uniform(0.55, 0.75)))
                y = edge + side * 0.4
                b.box(((x0 + 160.0) / 2, y, 0.65), (160.0 - x0, 0.05, 0.3), rail)
                for x in np.arange(x0, 160.0, 4.0):
                    b.box((x, y + side * 0.05, 0.35), (0.1, 0.1, 0.7), rail)

    # parked cars along both kerbs, on slots 6.5 m apart
    n_parked = int(rng.integers(cfg.parked_cars[0], cfg.parked_cars[1] + 1))
    # the right kerb gets parked cars only when they stay clear of the ego lane (|y| < 1.1 m), else they'd block it
    sides = (-1, 1) if right + 1.15 + 1.0 < -1.1 else (1,)
    slots = [(s, xs) for s in sides for xs in np.arange(4.0, 90.0, 6.5)]
    for i in rng.permutation(len(slots))[:n_parked]:
        side, xs = slots[i]
        y = (right + 1.15) if side < 0 else (left - 1.15)
        _add_car(b, rng, xs + rng.uniform(-0.5, 0.5), y, rng.normal(0, 0.03) + (0 if rng.random() < 0.7 else np.pi),
                 (0, 0, 0))

    # moving cars: same direction right of the divider, oncoming left of it
    n_moving = int(rng.integers(cfg.moving_cars[0], cfg.moving_cars[1] + 1))
    for _ in range(n_moving):
        oncoming = rng.random() < 0.6 or centre < 1.0
        if oncoming:
            y = rng.uniform(centre + 1.2, max(centre + 1.3, left - 3.3))
            v = -rng.uniform(5, 15)
        else:
            y = 0.0
            v = ego_speed + rng.uniform(-3, 3)
        x = rng.uniform(10.0, 80.0)
        _add_car(b, rng, x, y, np.pi if v < 0 else 0.0, (v, 0.0, 0.0))

    # pedestrians on the sidewalks (walking along) or crossing the road
    n_ped = int(rng.integers(cfg.pedestrians[0], cfg.pedestrians[1] + 1))
    for _ in range(n_ped):
        x = rng.uniform(4.0, 60.0)
        if rng.random() < 0.2:
            y = rng.uniform(right + 1.0, left - 1.0)
            vel = (0.0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.6), 0.0)
        else:
            side = rng.choice([-1, 1])
            y = (right - rng.uniform(0.4, walk_w[0] - 0.3)) if side < 0 else (left + rng.uniform(0.4, walk_w[1] - 0.3))
            vel = (rng.choice([-1, 1]) * rng.uniform(0.8, 1.6), 0.0, 0.0) if rng.random() < 0.7 else (0.0, 0.0, 0.0)
        _add_pedestrian(b, rng, x, y, vel)

    # poles / street lamps on the kerb
    n_poles = int(rng.integers(cfg.poles[0], cfg.poles[1] + 1))
    for _ in range(n_poles):
        side = rng.choice([-1, 1])
        y = (right - 0.4) if side < 0 else (left + 0.4)
        x = rng.uniform(2.0, 120.0)
        h = rng.uniform(3.0, 9.0)
        po = b.new_object(POLE, np.full(3, rng.uniform(0.3, 0.6)))
        b.cylinder((x, y, 0.0), rng.uniform(0.06, 0.14), h, po)
        if h > 5 and rng.random() < 0.6:   # lamp arm over the road
            b.box((x, y - side * 0.9, h - 0.1), (0.2, 1.8, 0.15), po)

    # trees on the sidewalks
    n_trees = int(rng.integers(cfg.trees[0], cfg.trees[1] + 1))
    for _ in range(n_trees):
        side = rng.choice([-1, 1])
        y = (right - rng.uniform(0.8, walk_w[0] - 0.5)) if side < 0 else (left + rng.uniform(0.8, walk_w[1] - 0.5))
        _add_tree(b, rng, rng.uniform(3.0, 120.0), y)
    return b.build((right, left), centre)


def _add_tree(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, big: bool = False) -> None:
    """A trunk and an ellipsoid crown; `big`: taller trunks and larger crowns (roadside rows, wood edges)."""
    th = rng.uniform(1.8, 3.5) if not big else rng.uniform(2.0, 5.0)
    tr = b.new_object(TRUNK, np.array([0.35, 0.24, 0.15]) * rng.uniform(0.7, 1.2))
    b.cylinder((x, y, 0.0), rng.uniform(0.1, 0.25) if not big else rng.uniform(0.15, 0.4), th + 0.5, tr)
    fo = b.new_object(FOLIAGE, np.clip(np.array([0.18, 0.38, 0.12]) * rng.uniform(0.6, 1.3, 3), 0, 1))
    r = rng.uniform(1.2, 2.8) if not big else rng.uniform(1.8, 4.5)
    b.ellipsoid((x, y, th + r * 0.8), (r, r, r * rng.uniform(0.9, 1.4)), fo)


def penetrate_foliage(scene: Scene, rc, origins: np.ndarray, dirs: np.ndarray, t: np.ndarray, prim: np.ndarray,
                      mean_depth: float, rng: np.random.Generator) -> np.ndarray:
    """Range along unit rays (N) after entering tree crowns: a ray whose hit `t` is on FOLIAGE travels on by
    Exp(mean_depth) before it meets a twig, or to the crown's far side when that is nearer (one extra ray cast from
    just inside the crown). Other hits are unchanged. `rc` is the RaycastingScene the hits came from."""
    import open3d as o3d

    t = np.asarray(t, np.float64).copy()
    if mean_depth <= 0 or len(t) == 0:
        return t
    hit = np.flatnonzero(np.isfinite(t))
    fol = hit[scene.material[scene.tri_object[prim[hit]]] == FOLIAGE]
    if len(fol) == 0:
        return t
    depth = rng.exponential(mean_depth, len(fol))
    start = origins[fol] + dirs[fol] * (t[fol, None] + 0.02)
    rays = np.concatenate([start, dirs[fol]], 1).astype(np.float32)
    chord = rc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64) + 0.02
    t[fol] += np.minimum(depth, np.where(np.isfinite(chord), chord, depth))
    return t
