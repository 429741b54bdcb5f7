"""The built-in synthetic data set: articulated 13-joint figures performing 4 actions.

Lets every part of the system (both training stages, keypoint-to-joint regression, FVD,
action recognition) run and be checked on a CPU without downloads. Each video shows one
human-like figure drawn as limbs (head, torso, upper/lower arms and legs, hands, feet) on a
textured background seen by a static camera, performing one of

    0 jumping_jacks   arms swing from the hips to over the head, legs spread, small hop
    1 squat           the pelvis drops with knees bending outwards, arms rise forwards
    2 arm_wave        one (sometimes both) raised forearms wave from side to side
    3 walk            side view, legs and arms swing, the figure walks across the frame

with a random phase, cycle length and amplitude, so videos of one class differ. Appearance is
random per video: body proportions, limb thickness, colours per body part, a torso texture
(stripes / two-tone / belt), position, scale and the background (colour gradient, faint waves,
low-contrast shapes and static noise).

Every video is a function of (seed, split, index) only, so it comes out the same whatever order
videos are requested in; "train" and "test" draw from disjoint seed streams.

Joints follow the project's keypoint convention: `(x, y)` in [-1, 1], x right, y down,
(-1, -1) the top-left corner of the top-left pixel, in Penn Action's joint order (`PENN_JOINTS`).
The figure's left side (`l_*`) is on the image's right when it faces the camera.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from PIL import Image, ImageDraw

from kpvp.data.datasets import PENN_JOINTS, SYNTHETIC_CLASSES

NUM_JOINTS = len(PENN_JOINTS)
SPLITS = ("train", "test")

(HEAD, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST,
 L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE) = range(NUM_JOINTS)
# Limb chains (start joint, end joint) per side, for drawing.
_ARM = {+1: (L_SHOULDER, L_ELBOW, L_WRIST), -1: (R_SHOULDER, R_ELBOW, R_WRIST)}
_LEG = {+1: (L_HIP, L_KNEE, L_ANKLE), -1: (R_HIP, R_KNEE, R_ANKLE)}

# Split ids in the seed sequence; distinct ids give statistically independent streams.
_SPLIT_STREAM = {"train": 0, "test": 1}


# === Body model ===

def _sample_body(rng: np.random.Generator) -> dict:
    """Body proportions in body units (standing height, head top to ankle, is about 1)."""
    def jitter(value, rel=0.12):
        return value * rng.uniform(1.0 - rel, 1.0 + rel)

    thick = rng.uniform(0.8, 1.25)
    return dict(
        head_r=jitter(0.066, 0.1),
        neck=jitter(0.1, 0.1),
        torso=jitter(0.3),
        shoulder_w=jitter(0.1),
        hip_w=jitter(0.058),
        upper_arm=jitter(0.165),
        forearm=jitter(0.15),
        thigh=jitter(0.235),
        shin=jitter(0.225),
        # Half widths of the drawn limbs.
        arm_w=0.026 * thick,
        forearm_w=0.021 * thick,
        thigh_w=0.036 * thick,
        shin_w=0.028 * thick,
        neck_w=0.022 * thick,
        hand_r=0.026 * thick,
        foot_w=0.018 * thick,
    )


def _direction(theta, side):
    """Unit vectors `[..., 2]` at angle `theta` from straight down, opening towards `side`."""
    return np.stack([side * np.sin(theta), np.cos(theta)], axis=-1)


def _two_link_ik(hip, ankle, a, b, side):
    """Knee positions `[T, 2]` of a leg with thigh `a`, shin `b`, bending towards x-sign `side`."""
    d_vec = ankle - hip
    d = np.linalg.norm(d_vec, axis=-1, keepdims=True)
    d = np.clip(d, abs(a - b) + 1e-4, a + b - 1e-4)
    e = d_vec / d
    along = (a * a - b * b + d * d) / (2 * d)
    out = np.sqrt(np.maximum(a * a - along * along, 0.0))
    normal = np.stack([-e[:, 1], e[:, 0]], axis=-1)
    normal *= np.sign(normal[:, :1] * side + 1e-9)
    return hip + along * e + out * normal


def _assemble(body, root, lean, hip_off, shoulder_off, arm_angles, leg_angles=None, knees=None,
              ankles=None, width=1.0):
    """Joints `[T, 13, 2]` in body units from root (pelvis) positions and limb angles.

    `arm_angles[side] = (upper, fore, side_sign)`, angles from straight down; the same for
    `leg_angles`, or explicit `knees`/`ankles` per side (inverse kinematics).
    """
    t = root.shape[0]
    joints = np.zeros((t, NUM_JOINTS, 2))
    up = np.stack([np.sin(lean), -np.cos(lean)], axis=-1)  # pelvis -> neck
    across = np.stack([np.cos(lean), np.sin(lean)], axis=-1)
    neck = root + body["torso"] * up
    joints[:, HEAD] = neck + body["neck"] * up
    for side in (+1, -1):
        joints[:, _LEG[side][0]] = root + side * hip_off * width * across
        joints[:, _ARM[side][0]] = neck + side * shoulder_off * width * across
        upper, fore, opening = arm_angles[side]
        joints[:, _ARM[side][1]] = joints[:, _ARM[side][0]] + body["upper_arm"] * _direction(
            upper, opening)
        joints[:, _ARM[side][2]] = joints[:, _ARM[side][1]] + body["forearm"] * _direction(
            fore, opening)
        if leg_angles is not None:
            thigh, shin, opening = leg_angles[side]
            joints[:, _LEG[side][1]] = joints[:, _LEG[side][0]] + body["thigh"] * _direction(
                thigh, opening)
            joints[:, _LEG[side][2]] = joints[:, _LEG[side][1]] + body["shin"] * _direction(
                shin, opening)
        else:
            joints[:, _LEG[side][1]] = knees[side]
            joints[:, _LEG[side][2]] = ankles[side]
    return joints


def _motion(label: int, body: dict, num_frames: int, rng: np.random.Generator) -> dict:
    """Joint trajectories of one action in body units, pelvis of the standing pose at (0, 0).

    Returns `joints` `[T, 13, 2]`, `facing` (+1 right, -1 left, 0 camera) and `walk_speed`
    (body units per frame the figure should travel; the caller scales it to fit the frame).
    """
    period = rng.uniform(14.0, 30.0)  # frames per cycle
    phase = rng.uniform(0.0, 2 * np.pi) + 2 * np.pi * np.arange(num_frames) / period
    amp = rng.uniform(0.85, 1.12)
    t = num_frames
    zeros = np.zeros(t)
    root = np.zeros((t, 2))
    rest = rng.uniform(0.1, 0.22)  # hanging arm angle
    stance = rng.uniform(0.03, 0.1)
    lean = zeros + rng.normal(0.0, 0.02)
    facing, speed, width = 0, 0.0, 1.0
    legs = {s: (zeros + stance, zeros + stance, s) for s in (+1, -1)}
    knees = ankles = None

    if label == 0:  # jumping_jacks
        open_ = (1 - np.cos(phase)) / 2
        arm = rest + (rng.uniform(2.6, 2.85) * amp - rest) * open_
        bend = rng.uniform(0.05, 0.25)
        arms = {s: (arm, arm + bend * np.sin(np.pi * open_), s) for s in (+1, -1)}
        leg = stance + rng.uniform(0.22, 0.34) * amp * open_
        legs = {s: (leg, leg, s) for s in (+1, -1)}
        root[:, 1] = -rng.uniform(0.02, 0.05) * np.abs(np.sin(phase))
    elif label == 1:  # squat
        down = (1 - np.cos(phase)) / 2
        depth = rng.uniform(0.14, 0.22) * amp
        root[:, 1] = depth * down
        lift = rng.uniform(1.2, 1.55) * down
        arms = {}
        for s in (+1, -1):
            # Seen from the front, an arm raised forwards keeps its x and shortens vertically.
            arms[s] = (lift, lift + 0.1 * down, 0.2 * s)
        ankles, knees = {}, {}
        leg_len = body["thigh"] + body["shin"]
        for s in (+1, -1):
            hip = root + np.array([s * body["hip_w"], 0.0])
            ankles[s] = np.broadcast_to(
                np.array([s * (body["hip_w"] + leg_len * np.sin(stance + 0.06)),
                          leg_len * np.cos(stance + 0.06)]), (t, 2)).copy()
            knees[s] = _two_link_ik(hip, ankles[s], body["thigh"], body["shin"], s)
        legs = None
    elif label == 2:  # arm_wave
        which = ((+1,), (-1,), (+1, -1))[rng.choice(3, p=[0.4, 0.4, 0.2])]
        arms = {s: (zeros + rest, zeros + rest + 0.05, s) for s in (+1, -1)}
        raise_ = rng.uniform(1.7, 2.3)
        swing = rng.uniform(0.35, 0.55) * amp
        for s in which:
            fore = np.pi - 0.15 + swing * np.sin(phase + (0.0 if s > 0 else np.pi))
            arms[s] = (zeros + raise_, fore, s)
        lean = lean + 0.03 * np.sin(phase)
    elif label == 3:  # walk
        facing = int(rng.choice([-1, 1]))
        width = rng.uniform(0.2, 0.4)  # turned sideways, slightly towards the camera
        swing = rng.uniform(0.32, 0.45) * amp
        knee_bend = rng.uniform(0.5, 0.8)
        arm_swing = rng.uniform(0.4, 0.7) * swing
        arms, legs = {}, {}
        for s, offset in ((+1, 0.0), (-1, np.pi)):
            thigh = swing * np.sin(phase + offset)
            shin = thigh - knee_bend * np.maximum(0.0, np.cos(phase + offset))
            legs[s] = (thigh, shin, facing)
            upper = -arm_swing * np.sin(phase + offset)
            arms[s] = (upper, upper + 0.25 + 0.15 * np.maximum(0.0, -np.sin(phase + offset)),
                       facing)
        root[:, 1] = -0.02 * np.abs(np.cos(phase))
        lean = lean + facing * 0.04
        # Two steps per cycle, each about twice the thigh+shin length times sin(swing).
        speed = 2 * 2 * (body["thigh"] + body["shin"]) * np.sin(swing) / period
    else:
        raise ValueError(f"label must be in [0, {len(SYNTHETIC_CLASSES)}), got {label}")

    joints = _assemble(body, root, lean, body["hip_w"], body["shoulder_w"], arms, legs,
                       knees, ankles, width)
    return dict(joints=joints, facing=facing, walk_speed=speed)


# === Appearance ===

_SKIN = np.array([[255, 219, 172], [241, 194, 125], [224, 172, 105], [198, 134, 66],
                  [141, 85, 36], [92, 58, 32]], np.float64)


def _random_color(rng, avoid, min_dist=90.0):
    """A saturated RGB colour at least `min_dist` away from every colour in `avoid`."""
    for _ in range(50):
        c = rng.uniform(0, 255, 3)
        if all(np.linalg.norm(c - a) >= min_dist for a in avoid):
            return c
    return 255.0 - np.mean(avoid, axis=0)


def _sample_appearance(rng: np.random.Generator, background_colors) -> dict:
    """Colours per body part and the torso texture; all differ clearly from the background."""
    avoid = list(background_colors)
    skin = _SKIN[rng.integers(len(_SKIN))] + rng.normal(0, 8, 3)
    if any(np.linalg.norm(skin - a) < 70 for a in avoid):
        skin = _random_color(rng, avoid)
    shirt = _random_color(rng, avoid + [skin])
    shirt2 = _random_color(rng, avoid + [shirt], min_dist=70)
    trousers = _random_color(rng, avoid + [shirt], min_dist=70)
    hair = _random_color(rng, [skin], min_dist=60) * rng.uniform(0.3, 0.8)
    if any(np.linalg.norm(hair - a) < 70 for a in avoid):
        hair = _random_color(rng, avoid + [skin], min_dist=70)
    colors = dict(
        skin=skin,
        hair=hair,
        shirt=shirt,
        shirt2=shirt2,
        sleeve=shirt if rng.random() < 0.6 else shirt2,
        forearm=skin if rng.random() < 0.5 else _random_color(rng, avoid, 70),
        trousers=trousers,
        shin=trousers if rng.random() < 0.7 else skin,
        shoes=_random_color(rng, avoid, min_dist=60),
    )
    colors = {k: tuple(int(v) for v in np.clip(np.round(c), 0, 255)) for k, c in colors.items()}
    texture = str(rng.choice(["stripes", "two_tone", "belt"]))
    return dict(colors=colors, texture=texture, stripes=int(rng.integers(3, 7)))


def _background(rng: np.random.Generator, size: int):
    """Background `[S, S, 3]` uint8: gradient, faint waves, low-contrast shapes, static noise."""
    c0 = rng.uniform(40, 215, 3)
    c1 = np.clip(c0 + rng.normal(0, 45, 3), 20, 235)
    angle = rng.uniform(0, 2 * np.pi)
    coords = (np.arange(size) + 0.5) / size - 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    ramp = np.clip(0.5 + np.cos(angle) * xx + np.sin(angle) * yy, 0, 1)[..., None]
    img = c0 * (1 - ramp) + c1 * ramp
    freq = rng.uniform(2, 8, 2) * 2 * np.pi
    img += rng.uniform(3, 8) * np.sin(freq[0] * xx + freq[1] * yy + rng.uniform(0, 6))[..., None]
    img = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.uniform(-0.2, 1.0, 2) * size
        w, h = rng.uniform(0.1, 0.5, 2) * size
        shade = np.asarray(img.getpixel((int(np.clip(x0, 0, size - 1)),
                                          int(np.clip(y0, 0, size - 1)))), np.float64)
        fill = tuple(int(v) for v in np.clip(shade + rng.normal(0, 12, 3), 0, 255))
        box = [x0, y0, x0 + w, y0 + h]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    arr = np.asarray(img, np.int16) + rng.integers(-4, 5, (size, size, 1), dtype=np.int16)
    return np.clip(arr, 0, 255).astype(np.uint8), (c0, c1, (c0 + c1) / 2)


# === Rendering ===

class _Painter:
    """Draws figure parts at `ss`-times supersampled resolution from 1x pixel-corner coords."""

    def __init__(self, draw: ImageDraw.ImageDraw, ss: int, scale: float, mask: bool):
        self.draw, self.ss, self.scale, self.mask = draw, ss, scale, mask

    def _pt(self, x, y):
        # PIL puts integer coordinates on pixel centres (ours are on pixel corners) and
        # truncates fractions, which would shift every shape up-left; round instead.
        return (math.floor(x * self.ss), math.floor(y * self.ss))

    def _fill(self, color):
        return 255 if self.mask else color

    def disc(self, c, r, color):
        # floor(v + 0.5) rounds v = c * ss - 0.5, the PIL coordinate of c.
        x, y = float(c[0]) * self.ss, float(c[1]) * self.ss
        r = r * self.scale * self.ss
        self.draw.ellipse([math.floor(x - r), math.floor(y - r), math.floor(x + r),
                           math.floor(y + r)], fill=self._fill(color))

    def polygon(self, points, color):
        self.draw.polygon([self._pt(x, y) for x, y in points], fill=self._fill(color))

    def limb(self, p, q, w0, w1, color):
        """A tapered segment with rounded ends; `w0`, `w1` half widths in body units."""
        # Plain floats: this runs a dozen times per frame and NumPy's per-call cost dominates.
        px, py, qx, qy = float(p[0]), float(p[1]), float(q[0]), float(q[1])
        k = self.scale / max(math.hypot(qx - px, qy - py), 1e-6)
        nx, ny = (py - qy) * k, (qx - px) * k
        self.polygon([(px + nx * w0, py + ny * w0), (qx + nx * w1, qy + ny * w1),
                      (qx - nx * w1, qy - ny * w1), (px - nx * w0, py - ny * w0)], color)
        self.disc((px, py), w0, color)
        self.disc((qx, qy), w1, color)


def _draw_figure(paint: _Painter, j: np.ndarray, body: dict, look: dict, facing: int):
    """Draws one pose; `j` `[13, 2]` joints in 1x pixel units, `facing` 0 front, +-1 side."""
    colors = look["colors"]
    pelvis = (j[L_HIP] + j[R_HIP]) / 2
    neck = (j[L_SHOULDER] + j[R_SHOULDER]) / 2
    axis = neck - pelvis
    axis_unit = axis / max(np.hypot(*axis), 1e-6)
    across = np.array([-axis_unit[1], axis_unit[0]])  # towards image right when upright
    scale = paint.scale
    if across[0] < 0:
        across = -across

    def arm(side):
        s, e, w = _ARM[side]
        paint.limb(j[s], j[e], body["arm_w"], body["forearm_w"] * 1.1, colors["sleeve"])
        paint.limb(j[e], j[w], body["forearm_w"], body["forearm_w"], colors["forearm"])
        fore = j[w] - j[e]
        fore = fore / max(np.hypot(*fore), 1e-6)
        paint.disc(j[w] + fore * body["hand_r"] * scale, body["hand_r"], colors["skin"])

    def leg(side):
        h, k, a = _LEG[side]
        paint.limb(j[h], j[k], body["thigh_w"], body["shin_w"] * 1.1, colors["trousers"])
        paint.limb(j[k], j[a], body["shin_w"], body["shin_w"] * 0.9, colors["shin"])
        toe_dir = np.array([facing, 0.35]) if facing else np.array([side * 0.45, 0.7])
        toe = j[a] + toe_dir / np.hypot(*toe_dir) * 0.06 * scale
        paint.limb(j[a], toe, body["foot_w"], body["foot_w"] * 0.9, colors["shoes"])

    def torso():
        half_top = max(abs(np.dot(j[L_SHOULDER] - neck, across)), 0.06 * scale) + \
            body["arm_w"] * scale
        half_bottom = max(abs(np.dot(j[L_HIP] - pelvis, across)), 0.055 * scale) + \
            body["thigh_w"] * scale
        top = neck + axis_unit * body["arm_w"] * scale
        tl, tr = top - across * half_top, top + across * half_top
        bl, br = pelvis - across * half_bottom, pelvis + across * half_bottom
        paint.limb(neck, j[HEAD], body["neck_w"], body["neck_w"], colors["skin"])
        paint.polygon([tl, tr, br, bl], colors["shirt"])
        if look["texture"] == "stripes":
            n = look["stripes"]
            for i in range(1, n, 2):
                a, b = i / n, (i + 1) / n
                paint.polygon([tl + (bl - tl) * a, tr + (br - tr) * a,
                               tr + (br - tr) * b, tl + (bl - tl) * b], colors["shirt2"])
        elif look["texture"] == "two_tone":
            paint.polygon([(tl + tr) / 2, tr, br, (bl + br) / 2], colors["shirt2"])
        else:  # a belt in the second colour
            paint.polygon([tl + (bl - tl) * 0.8, tr + (br - tr) * 0.8, br, bl], colors["shirt2"])

    def head():
        r = body["head_r"]
        paint.disc(j[HEAD], r, colors["skin"])
        x, y = j[HEAD] * paint.ss  # PIL coordinate + 0.5, so floor() rounds
        rr = r * scale * paint.ss
        # Hair over the top and, seen from the side, the back of the head (PIL angles are
        # degrees clockwise from 3 o'clock).
        start, end = {0: (170, 370), 1: (130, 345), -1: (195, 410)}[facing]
        paint.draw.chord([math.floor(x - rr), math.floor(y - rr * 1.05), math.floor(x + rr),
                          math.floor(y + rr)], start, end,
                         fill=paint._fill(colors["hair"]))

    if facing == 0:
        leg(+1)
        leg(-1)
        torso()
        arm(+1)
        arm(-1)
        head()
    else:
        # Facing right shows the figure's right side to the camera, facing left its left side.
        near = -1 if facing > 0 else +1
        arm(-near)
        leg(-near)
        torso()
        leg(near)
        head()
        arm(near)


def _supersampling(image_size: int) -> int:
    """Supersampling factor: figures are drawn on a canvas of at least 256x256 pixels."""
    return max(2, -(-256 // image_size))


def render_video(seed, split: str, index: int, image_size: int = 128, num_frames: int = 48,
                 with_layers: bool = False) -> dict:
    """Renders the video `index` of `split` (a pure function of its arguments).

    Returns the data element: `frames` uint8 `[T, S, S, 3]`, `label` int, `id` str, `joints`
    float32 `[T, 13, 2]` (x, y in [-1, 1], pixel-corner convention), `visible` bool `[T, 13]`.
    `with_layers=True` adds `background` uint8 `[S, S, 3]` (the frame without the figure) and
    `coverage` float32 `[T, S, S]` (fraction of each pixel the figure covers), for checks.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    # One stream per aspect, so that e.g. the background's per-pixel noise (whose amount of
    # random numbers depends on the size) leaves motion and colours the same at every size.
    motion_rng, place_rng, background_rng, look_rng = (
        np.random.default_rng([int(seed), _SPLIT_STREAM[split], int(index), k]) for k in range(4))
    label = _label(seed, split, index)
    body = _sample_body(motion_rng)
    motion = _motion(label, body, num_frames, motion_rng)
    joints_body = motion["joints"]

    # Extent of the drawn figure in body units (joints plus head, hands and feet).
    pad = np.array([0.09, 0.09])
    low = joints_body.min(axis=(0, 1)) - pad
    high = joints_body.max(axis=(0, 1)) + pad
    low[1] = min(low[1], joints_body[:, HEAD, 1].min() - body["head_r"] * 1.1)
    extent = high - low
    # Height of the figure's bounding box: 55-85 % of the frame, narrower if it is wide.
    scale = place_rng.uniform(0.55, 0.85) * image_size / extent[1]
    scale = min(scale, 0.9 * image_size / extent[0])
    travel = 0.0
    if motion["facing"]:
        room = max(image_size - extent[0] * scale, 0.0)
        # Real walking speed would carry the figure out of the frame within a cycle or two,
        # so it walks across part of the free room at most (the feet slide a little).
        travel = min(motion["walk_speed"] * scale * (num_frames - 1),
                     place_rng.uniform(0.5, 1.0) * room)
    size_px = extent * scale + np.array([travel, 0.0])
    # Mostly inside the frame; a figure may overlap an edge by up to 6 % of the frame.
    slack = 0.06 * image_size
    offset = np.array([place_rng.uniform(-slack, max(image_size - size_px[0], 0) + slack),
                       place_rng.uniform(-slack, max(image_size - size_px[1], 0) + slack)])
    if motion["facing"] < 0:
        offset[0] += travel  # walking left starts on the right
    joints_px = (joints_body - low) * scale + offset
    if motion["facing"]:
        steps = np.linspace(0.0, 1.0, num_frames)[:, None]
        joints_px[..., 0] += motion["facing"] * travel * steps

    background, bg_colors = _background(background_rng, image_size)
    look = _sample_appearance(look_rng, bg_colors)
    ss = _supersampling(image_size)
    canvas_bg = Image.fromarray(background).resize((image_size * ss,) * 2, Image.NEAREST)
    frames = np.empty((num_frames, image_size, image_size, 3), np.uint8)
    coverage = np.empty((num_frames, image_size, image_size), np.float32) if with_layers else None
    for t in range(num_frames):
        canvas = canvas_bg.copy()
        _draw_figure(_Painter(ImageDraw.Draw(canvas), ss, scale, False), joints_px[t], body, look,
                     motion["facing"])
        frames[t] = np.asarray(canvas.reduce(ss))
        if with_layers:
            mask = Image.new("L", canvas.size, 0)
            _draw_figure(_Painter(ImageDraw.Draw(mask), ss, scale, True), joints_px[t], body,
                         look, motion["facing"])
            coverage[t] = np.asarray(mask.reduce(ss), np.float32) / 255.0

    joints = (joints_px / image_size * 2.0 - 1.0).astype(np.float32)
    element = dict(
        frames=frames,
        label=label,
        id=f"synthetic/{split}/{index:06d}",
        joints=joints,
        visible=np.all(np.abs(joints) <= 1.0, axis=-1),
    )
    if with_layers:
        element["background"] = background
        element["coverage"] = coverage
    return element


def _label(seed, split: str, index: int) -> int:
    """Class of video `index`: every block of 4 consecutive videos holds each class once."""
    block = np.random.default_rng([int(seed), _SPLIT_STREAM[split], int(index) // 4, 7])
    return int(block.permutation(len(SYNTHETIC_CLASSES))[int(index) % 4])


# === Data set ===

class SyntheticVideos:
    """Synthetic articulated-figure videos; a sequence of data elements.

    Element `i`: `frames` uint8 `[T, S, S, 3]`, `label` int in [0, 4), `id`
    `"synthetic/<split>/<i:06d>"`, `joints` float32 `[T, 13, 2]` (Penn Action order, keypoint
    convention), `visible` bool `[T, 13]` (False where a joint is outside the frame).
    """
    CLASS_NAMES = SYNTHETIC_CLASSES

    def __init__(self, split: str, num_videos: int, image_size: int = 128,
                 num_frames: int = 48, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        for name, value, low in (("num_videos", num_videos, 0), ("image_size", image_size, 8),
                                 ("num_frames", num_frames, 1)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.split = split
        self.num_videos = int(num_videos)
        self.image_size = int(image_size)
        self.num_frames = int(num_frames)
        self.seed = int(seed)
        self.name = "synthetic"
        self.class_names = SYNTHETIC_CLASSES
        self.has_joints = True
        self.skipped = []

    def __len__(self) -> int:
        return self.num_videos

    def _check_index(self, index) -> int:
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if not -self.num_videos <= index < self.num_videos:
            raise IndexError(f"index {index} out of range for the {self.num_videos} videos of "
                             f"synthetic/{self.split}")
        return int(index) % self.num_videos

    def label(self, index: int) -> int:
        """The class of video `index` without rendering it."""
        return _label(self.seed, self.split, self._check_index(index))

    def __getitem__(self, index: int) -> dict:
        return render_video(self.seed, self.split, self._check_index(index), self.image_size,
                            self.num_frames)

    def render_with_layers(self, index: int) -> dict:
        """Element `index` plus `background` `[S, S, 3]` and figure `coverage` `[T, S, S]`."""
        return render_video(self.seed, self.split, self._check_index(index), self.image_size,
                            self.num_frames, with_layers=True)

    def __iter__(self):
        for i in range(self.num_videos):
            yield self[i]

    def __repr__(self) -> str:
        return (f"SyntheticVideos(split={self.split!r}, num_videos={self.num_videos}, "
                f"image_size={self.image_size}, num_frames={self.num_frames}, seed={self.seed})")


def open_source(config, split: str) -> SyntheticVideos:
    """The `split` ("train" | "test") of the synthetic data set as sized by `config`.

    Uses `config.seed`, `config.image_size` and `config.data.synthetic_num_train` /
    `synthetic_num_test` / `synthetic_num_frames`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    num = config.data.synthetic_num_train if split == "train" else config.data.synthetic_num_test
    return SyntheticVideos(split, num, image_size=config.image_size,
                           num_frames=config.data.synthetic_num_frames, seed=config.seed)
