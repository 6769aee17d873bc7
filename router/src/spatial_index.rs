//! A uniform-grid point index over areas (each a `MultiPolygon`), answering "which area
//! contains this point" with exactly the answer of a linear scan calling
//! [`MultiPolygon::contains`] in area order — border rule included — but without touching
//! polygons for most points (see ARCHITECTURE.md, "Spatial lookup: what was measured").
//!
//! # How it works
//!
//! The bounding box of all areas is cut into cells of about 1/10 of a typical polygon's
//! width (in the finest layer). A cell that lies wholly inside an area holds just that
//! area's number: one array read answers every point in it. A cell crossed by polygon
//! borders keeps, per polygon, only the edges that come near it, plus what it needs to
//! account for the edges further east:
//!
//! The crossing-number test of `geo` counts the edges a ray from the point towards +lon
//! crosses. Split the edges of the cell's row into those near the cell ("local": they can
//! pass anywhere relative to a point in the cell) and the rest, which lie wholly east or
//! wholly west of the cell, at least `MARGIN` away. A west edge is never crossed. An east
//! edge is crossed exactly when its latitude range `[low, high)` holds the point's
//! latitude — a comparison, no arithmetic. So the parity of the far edges is a step
//! function of latitude alone: its value at the cell's south side, flipped at each
//! "toggle" latitude (an endpoint of a far east edge inside the row; the two edges meeting
//! at a vertex cancel out, so only vertices next to a local edge are left). A point is
//! then tested against the local edges with the very expression `geo` uses, so the answer
//! is bit-for-bit the same, including points on shared borders.
//!
//! `geo` tests a polygon's bounding box before counting crossings. North, south and east
//! of the box the count itself is exactly zero (no edge spans the latitude, or every cross
//! product rounds to ≤ 0 because rounding is monotonic), so only cells reaching west of a
//! polygon's box keep its west side to test.
//!
//! # Layout
//!
//! Several layers (the city's communities and grids) share one lattice and their cell
//! values sit side by side, so one cache line answers every layer for most points. A
//! border cell's value points into `blobs`, where the cell's edge points (each run stored
//! once, however many polygons and layers share it: neighbouring grids and their
//! communities share borders) and its entries lie together: a border lookup reads one or
//! two more cache lines, never a chain of separate arrays. The benchmark's city (5,000
//! communities, 50,000 grids of 100+ vertices) takes about 220 MiB at 1/10-width cells,
//! 64% of them answering with one read.

use std::collections::BTreeMap;

use crate::geo::{BBox, MultiPolygon, Point, Polygon};

/// Edges closer than this (degrees, ≈ 0.1 mm) to a cell are treated as crossing it. Far
/// larger than floating-point error on city coordinates, so the sign of the crossing test
/// for a far edge is never in doubt.
const MARGIN: f64 = 1e-9;

/// Cells per typical polygon width (ARCHITECTURE.md: 1/8 to 1/16 worked well). On the
/// benchmark's city, 8 gives 2.3 M decisions/s in 182 MiB, 10 gives 2.4 M/s in 221 MiB,
/// 16 gives 2.6 M/s in 354 MiB.
pub const DEFAULT_CELLS_PER_WIDTH: f64 = 10.0;

/// Upper bound on the number of cells per layer; cells grow when it would be exceeded.
const MAX_CELLS: usize = 1 << 26;

/// Cell value tag: the rest is the word offset of the cell's entries in `blobs`. Otherwise
/// 0 is "no area" and `n > 0` is "wholly inside area n - 1".
const BORDER: u32 = 1 << 31;

// Entry header: area (bits 0..32), flags (32..40), toggle count (40..48), run count
// (48..64); counts too large for their bits move to an extra word (`WIDE`).
const FULL: u64 = 1;
const BASE: u64 = 2;
const CHECK_WEST: u64 = 4;
const LAST: u64 = 8;
const WIDE: u64 = 16;

/// A point index over one or more layers of areas sharing one lattice of cells (the city
/// indexes communities and grids together: one cache line answers both for most points).
#[derive(Debug, Clone)]
pub struct SpatialIndex {
    bounds: Option<BBox>,
    /// South-west corner of the lattice (the bounds' corner) and cell size.
    origin_lon: f64,
    origin_lat: f64,
    cell_w: f64,
    cell_h: f64,
    /// `1 / cell_w`, `1 / cell_h`: a first guess at a point's cell, corrected exactly.
    per_w: f64,
    per_h: f64,
    cols: usize,
    rows: usize,
    layers: usize,
    /// `cells[cell * layers + layer]`.
    cells: Vec<u32>,
    /// Per border cell: the points of its local edges (`lon, lat` pairs, each run once
    /// however many polygons share it), then per layer its entries, each polygon's in area
    /// order: the header word (with `WIDE`, a second word: toggle count | run count << 32);
    /// the polygon's west side when `CHECK_WEST`; the toggle latitudes; one word per run,
    /// its points' word offset | point count << 32. Floats as bits.
    blobs: Vec<u64>,
}

/// A polygon's part in a border cell, while building.
#[derive(Debug, Clone, Copy)]
struct Pending {
    slot: usize,
    area: u32,
    polygon: u32,
    /// Ranges in the builder's `runs` and `toggles`.
    runs: (u32, u32),
    toggles: (u32, u32),
    /// Parity of the far east edges at the cell's south side.
    base: bool,
    /// The whole cell is inside the polygon.
    full: bool,
    /// The cell reaches west of the polygon's box: test that side first, as `geo` tests the
    /// box. (North, south and east of the box the crossing test itself gives "outside"
    /// exactly: no edge spans the latitude, or every edge's cross product rounds to ≤ 0.)
    check_west: bool,
}

/// Consecutive edges `start .. start + len` of the builder's `vertices`.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u32,
    len: u32,
}

impl SpatialIndex {
    /// Indexes `areas`; `lookup` returns positions in this sequence.
    pub fn build<'a>(areas: impl IntoIterator<Item = &'a MultiPolygon>) -> SpatialIndex {
        let areas: Vec<&MultiPolygon> = areas.into_iter().collect();
        Self::build_layers(&[areas], DEFAULT_CELLS_PER_WIDTH)
    }

    /// Indexes several layers of areas on one lattice, with cells `1 / cells_per_width` of
    /// a typical polygon's width in the finest layer. `lookup_in(layer, p)` answers for
    /// each layer on its own.
    pub fn build_layers(layers: &[Vec<&MultiPolygon>], cells_per_width: f64) -> SpatialIndex {
        let layer_polygons: Vec<Vec<(u32, &Polygon)>> = layers
            .iter()
            .map(|areas| {
                areas
                    .iter()
                    .enumerate()
                    .flat_map(|(a, mp)| {
                        let area = u32::try_from(a).expect("fewer than 2^31 areas");
                        mp.polygons().iter().map(move |p| (area, p))
                    })
                    .collect()
            })
            .collect();
        let mut index = SpatialIndex {
            bounds: None,
            origin_lon: 0.0,
            origin_lat: 0.0,
            cell_w: 1.0,
            cell_h: 1.0,
            per_w: 1.0,
            per_h: 1.0,
            cols: 0,
            rows: 0,
            layers: layers.len().max(1),
            cells: Vec::new(),
            blobs: Vec::new(),
        };
        let Some(bounds) = layer_polygons
            .iter()
            .flatten()
            .map(|(_, p)| p.bbox())
            .reduce(|a, b| a.union(&b))
        else {
            return index;
        };
        index.bounds = Some(bounds);
        index.origin_lon = bounds.min_lon;
        index.origin_lat = bounds.min_lat;
        index.size_cells(&layer_polygons, bounds, cells_per_width);

        let mut builder = Builder {
            claims: vec![0; index.cols * index.rows * index.layers],
            pending: Vec::new(),
            runs: Vec::new(),
            toggles: Vec::new(),
            vertices: Vec::new(),
            boxes: Vec::new(),
        };
        for (layer, polygons) in layer_polygons.iter().enumerate() {
            for (area, polygon) in polygons {
                index.add_polygon(&mut builder, layer, *area, polygon);
            }
        }
        index.finish(builder);
        index
    }

    /// The area of layer 0 containing `p`.
    pub fn lookup(&self, p: Point) -> Option<usize> {
        self.lookup_in(0, p)
    }

    /// The area of `layer` containing `p`: the lowest position whose
    /// `MultiPolygon::contains(p)` holds, exactly as a scan would find it.
    pub fn lookup_in(&self, layer: usize, p: Point) -> Option<usize> {
        self.cell_of(p)
            .and_then(|cell| self.lookup_at(cell, layer, p))
    }

    /// The cell holding `p`, when `p` lies within the index's bounds; with `lookup_at`, it
    /// lets a caller asking several layers about one point find the cell once.
    pub(crate) fn cell_of(&self, p: Point) -> Option<usize> {
        // Also refuses NaN, like `BBox::contains`.
        self.bounds?
            .contains(p)
            .then(|| self.row_of(p.lat) * self.cols + self.col_of(p.lon))
    }

    /// `lookup_in` for a point already known to lie in `cell`.
    pub(crate) fn lookup_at(&self, cell: usize, layer: usize, p: Point) -> Option<usize> {
        if layer >= self.layers {
            return None;
        }
        let value = self.cells[cell * self.layers + layer];
        if value & BORDER == 0 {
            return value.checked_sub(1).map(|a| a as usize);
        }
        self.border_lookup((value & !BORDER) as usize, p)
    }

    /// Walks a border cell's entries; the first polygon containing `p` gives the area.
    fn border_lookup(&self, mut at: usize, p: Point) -> Option<usize> {
        let blobs = &self.blobs;
        let float = |i: usize| f64::from_bits(blobs[i]);
        loop {
            let header = blobs[at];
            let area = header as u32 as usize;
            let flags = (header >> 32) & 0xff;
            if flags & FULL != 0 {
                return Some(area);
            }
            let (toggles, runs) = if flags & WIDE != 0 {
                at += 1;
                (
                    (blobs[at] & 0xffff_ffff) as usize,
                    (blobs[at] >> 32) as usize,
                )
            } else {
                (((header >> 40) & 0xff) as usize, (header >> 48) as usize)
            };
            at += 1;
            let mut inside = true;
            if flags & CHECK_WEST != 0 {
                inside = p.lon >= float(at);
                at += 1;
            }
            let mut odd = flags & BASE != 0;
            for i in at..at + toggles {
                if float(i) > p.lat {
                    break;
                }
                odd = !odd;
            }
            at += toggles;
            for _ in 0..runs {
                let run = blobs[at];
                at += 1;
                if inside {
                    let (start, points) = (run as u32 as usize, (run >> 32) as usize);
                    for k in 0..points - 1 {
                        let i = start + 2 * k;
                        let a = Point::new(float(i), float(i + 1));
                        let b = Point::new(float(i + 2), float(i + 3));
                        // The same test, in the same floating-point steps, as geo's.
                        let (low, high) = if a.lat < b.lat { (a, b) } else { (b, a) };
                        if !(low.lat <= p.lat && p.lat < high.lat) {
                            continue;
                        }
                        let cross = (high.lon - low.lon) * (p.lat - low.lat)
                            - (high.lat - low.lat) * (p.lon - low.lon);
                        if cross > 0.0 {
                            odd = !odd;
                        }
                    }
                }
            }
            if inside && odd {
                return Some(area);
            }
            if flags & LAST != 0 {
                return None;
            }
        }
    }

    /// Bytes held by the index (its own allocations, counted by capacity).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.cells.capacity() * std::mem::size_of::<u32>()
            + self.blobs.capacity() * std::mem::size_of::<u64>()
    }

    /// Number of cells (over all layers) and how many answer with one read.
    pub fn cell_stats(&self) -> (usize, usize) {
        let single = self.cells.iter().filter(|&&c| c & BORDER == 0).count();
        (self.cells.len(), single)
    }

    // -------------------------------------------------------------------------- geometry

    fn size_cells(&mut self, layers: &[Vec<(u32, &Polygon)>], bounds: BBox, cells_per_width: f64) {
        let span_w = bounds.max_lon - bounds.min_lon;
        let span_h = bounds.max_lat - bounds.min_lat;
        let k = if cells_per_width.is_finite() && cells_per_width > 0.0 {
            cells_per_width
        } else {
            DEFAULT_CELLS_PER_WIDTH
        };
        // The finest layer sets the size; degenerate (zero-width) polygons fall back to the
        // whole extent, then to a nominal size.
        let mean = |f: fn(&BBox) -> f64| {
            layers
                .iter()
                .filter(|l| !l.is_empty())
                .map(|l| l.iter().map(|(_, p)| f(&p.bbox())).sum::<f64>() / l.len() as f64)
                .fold(f64::INFINITY, f64::min)
        };
        let pick = |mean: f64, span: f64| {
            [mean / k, span / k, 1e-6]
                .into_iter()
                .find(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(1e-6)
        };
        let mut w = pick(mean(|b| b.max_lon - b.min_lon), span_w);
        let mut h = pick(mean(|b| b.max_lat - b.min_lat), span_h);
        loop {
            let cols = (span_w / w) as usize + 1;
            let rows = (span_h / h) as usize + 1;
            if cols.saturating_mul(rows) <= MAX_CELLS {
                break;
            }
            w *= 1.5;
            h *= 1.5;
        }
        self.cell_w = w;
        self.cell_h = h;
        self.per_w = 1.0 / w;
        self.per_h = 1.0 / h;
        self.cols = (span_w / w) as usize + 1;
        self.rows = (span_h / h) as usize + 1;
        // The closed bounds must fall inside the last column and row.
        while self.x(self.cols) <= bounds.max_lon {
            self.cols += 1;
        }
        while self.y(self.rows) <= bounds.max_lat {
            self.rows += 1;
        }
    }

    /// West side of column `i`; build and lookup compute it the same way, so a point's
    /// column is exact.
    fn x(&self, i: usize) -> f64 {
        self.origin_lon + i as f64 * self.cell_w
    }

    fn y(&self, j: usize) -> f64 {
        self.origin_lat + j as f64 * self.cell_h
    }

    /// The column `c` with `x(c) <= lon < x(c + 1)`, clamped to the lattice.
    fn col_of(&self, lon: f64) -> usize {
        // `as usize` saturates: negative and NaN become 0.
        let mut c = (((lon - self.origin_lon) * self.per_w) as usize).min(self.cols - 1);
        while c > 0 && lon < self.x(c) {
            c -= 1;
        }
        while c + 1 < self.cols && lon >= self.x(c + 1) {
            c += 1;
        }
        c
    }

    fn row_of(&self, lat: f64) -> usize {
        let mut r = (((lat - self.origin_lat) * self.per_h) as usize).min(self.rows - 1);
        while r > 0 && lat < self.y(r) {
            r -= 1;
        }
        while r + 1 < self.rows && lat >= self.y(r + 1) {
            r += 1;
        }
        r
    }

    // -------------------------------------------------------------------------- building

    fn add_polygon(&self, builder: &mut Builder, layer: usize, area: u32, polygon: &Polygon) {
        let bbox = polygon.bbox();
        let number = u32::try_from(builder.boxes.len()).expect("fewer than 2^32 polygons");
        builder.boxes.push(bbox);

        // Copy the rings, closed, and note in which rows and columns each edge passes.
        let mut spans: Vec<EdgeSpan> = Vec::new();
        for ring in
            std::iter::once(polygon.exterior()).chain(polygon.holes().iter().map(Vec::as_slice))
        {
            let start = builder.vertices.len();
            builder.vertices.extend_from_slice(ring);
            builder.vertices.push(ring[0]);
            for i in start..start + ring.len() {
                self.edge_spans(&builder.vertices, i, &mut spans);
            }
        }
        spans.sort_unstable_by_key(|s| (s.row, s.c0, s.edge));

        let c_lo = self.col_of(bbox.min_lon - MARGIN);
        let c_hi = self.col_of(bbox.max_lon + MARGIN);
        let width = c_hi - c_lo + 1;
        let mut local: Vec<Vec<u32>> = vec![Vec::new(); width];
        let mut joining: Vec<Vec<u32>> = vec![Vec::new(); width + 1];
        for row_spans in spans.chunk_by(|a, b| a.row == b.row) {
            let row = row_spans[0].row;
            let (y0, y1) = (self.y(row), self.y(row + 1));
            local.iter_mut().for_each(Vec::clear);
            joining.iter_mut().for_each(Vec::clear);
            for s in row_spans {
                // Rounding can put an end a hair outside the box: keep to its columns.
                let (c0, c1) = (s.c0.clamp(c_lo, c_hi), s.c1.clamp(c_lo, c_hi));
                for c in c0..=c1 {
                    local[c - c_lo].push(s.edge);
                }
                joining[c0 - c_lo].push(s.edge);
            }
            // Sweep west from the polygon's east end: at column c, the far east edges are
            // those whose first column is east of c.
            let mut base = false;
            let mut live: BTreeMap<OrderedLat, f64> = BTreeMap::new();
            for c in (c_lo..=c_hi).rev() {
                for &e in &joining[c + 1 - c_lo] {
                    let (low, high) = edge_ends(&builder.vertices, e);
                    if low.lat <= y0 && y0 < high.lat {
                        base = !base;
                    }
                    for t in [low.lat, high.lat] {
                        if y0 < t && t < y1 {
                            let key = OrderedLat::of(t);
                            if live.remove(&key).is_none() {
                                live.insert(key, t);
                            }
                        }
                    }
                }
                let slot = (row * self.cols + c) * self.layers + layer;
                let within_box = bbox.min_lon <= self.x(c)
                    && self.x(c + 1) <= bbox.max_lon
                    && bbox.min_lat <= y0
                    && y1 <= bbox.max_lat;
                let west_of_box = self.x(c) < bbox.min_lon;
                let edges = &mut local[c - c_lo];
                if edges.is_empty() && live.is_empty() {
                    if base && within_box {
                        builder.claim(slot, area, number);
                    } else if base {
                        // Inside by parity yet not within the box: let the exact path decide.
                        builder.pending(slot, area, number, &[], &live, true, west_of_box);
                    }
                    continue;
                }
                edges.sort_unstable();
                edges.dedup();
                builder.pending(slot, area, number, edges, &live, base, west_of_box);
            }
        }
    }

    /// The rows an edge passes through and, in each, the columns it comes within `MARGIN`
    /// of. East-west edges are left out: the crossing test never counts them.
    fn edge_spans(&self, vertices: &[Point], edge: usize, out: &mut Vec<EdgeSpan>) {
        let (a, b) = (vertices[edge], vertices[edge + 1]);
        if a.lat == b.lat {
            return;
        }
        let edge = u32::try_from(edge).expect("fewer than 2^32 vertices");
        let r0 = self.row_of(a.lat.min(b.lat) - MARGIN);
        let r1 = self.row_of(a.lat.max(b.lat) + MARGIN);
        for row in r0..=r1 {
            let (lo, hi) = (self.y(row) - MARGIN, self.y(row + 1) + MARGIN);
            let (ta, tb) = (
                (lo - a.lat) / (b.lat - a.lat),
                (hi - a.lat) / (b.lat - a.lat),
            );
            let (t0, t1) = (ta.min(tb).max(0.0), ta.max(tb).min(1.0));
            if t0 > t1 {
                continue;
            }
            let xa = a.lon + t0 * (b.lon - a.lon);
            let xb = a.lon + t1 * (b.lon - a.lon);
            out.push(EdgeSpan {
                row,
                c0: self.col_of(xa.min(xb) - MARGIN),
                c1: self.col_of(xa.max(xb) + MARGIN),
                edge,
            });
        }
    }

    fn finish(&mut self, builder: Builder) {
        let Builder {
            claims,
            mut pending,
            runs,
            toggles,
            vertices,
            boxes,
        } = builder;
        self.cells = claims;
        let layers = self.layers;
        // Per cell, entries in area order: the first area containing the point wins.
        pending.sort_by_key(|e| (e.slot, e.area, e.polygon));
        let mut group: Vec<Pending> = Vec::new();
        let mut words: Vec<u64> = Vec::new();
        // The runs whose points this cell's blob holds, as (word offset, point count): a
        // border shared by two grids (and their communities) is stored once.
        let mut pool: Vec<(usize, usize)> = Vec::new();
        for same_cell in pending.chunk_by(|a, b| a.slot / layers == b.slot / layers) {
            pool.clear();
            for same_slot in same_cell.chunk_by(|a, b| a.slot == b.slot) {
                let slot = same_slot[0].slot;
                group.clear();
                group.extend_from_slice(same_slot);
                if let Some(area) = self.cells[slot].checked_sub(1) {
                    // The area claiming the whole cell takes its place in the order.
                    let at = group.partition_point(|e| e.area <= area);
                    group.insert(at, Pending::full(slot, area));
                }
                if let Some(first_full) = group.iter().position(|e| e.full) {
                    group.truncate(first_full + 1);
                }
                if group.len() == 1 && group[0].full {
                    self.cells[slot] = group[0].area + 1;
                    continue;
                }
                // Points first (new ones appended to the pool), so that the entries that
                // follow lie together.
                words.clear();
                for (i, e) in group.iter().enumerate() {
                    let last = if i + 1 == group.len() { LAST } else { 0 };
                    let e_runs = &runs[e.runs.0 as usize..e.runs.1 as usize];
                    let e_toggles = &toggles[e.toggles.0 as usize..e.toggles.1 as usize];
                    let wide = e_toggles.len() > 0xff || e_runs.len() > 0xffff;
                    let flags = last
                        | if e.full { FULL } else { 0 }
                        | if e.base { BASE } else { 0 }
                        | if e.check_west { CHECK_WEST } else { 0 }
                        | if wide { WIDE } else { 0 };
                    let mut header = u64::from(e.area) | flags << 32;
                    if !wide {
                        header |= (e_toggles.len() as u64) << 40 | (e_runs.len() as u64) << 48;
                    }
                    words.push(header);
                    if wide {
                        words.push(e_toggles.len() as u64 | (e_runs.len() as u64) << 32);
                    }
                    if e.full {
                        continue;
                    }
                    if e.check_west {
                        words.push(boxes[e.polygon as usize].min_lon.to_bits());
                    }
                    words.extend(e_toggles.iter().map(|t| t.to_bits()));
                    for run in e_runs {
                        let points = &vertices[run.start as usize..=(run.start + run.len) as usize];
                        let offset = match pool.iter().find(|&&(at, n)| {
                            n == points.len() && same_points(&self.blobs[at..at + 2 * n], points)
                        }) {
                            Some(&(at, _)) => at,
                            None => {
                                let at = self.blobs.len();
                                for p in points {
                                    self.blobs.push(p.lon.to_bits());
                                    self.blobs.push(p.lat.to_bits());
                                }
                                pool.push((at, points.len()));
                                at
                            }
                        };
                        let offset = u32::try_from(offset).expect("index blobs fit in 2^32 words");
                        words.push(u64::from(offset) | (points.len() as u64) << 32);
                    }
                }
                let offset = u32::try_from(self.blobs.len())
                    .ok()
                    .filter(|&o| o < BORDER)
                    .expect("index blobs fit in 2^31 words");
                self.cells[slot] = BORDER | offset;
                self.blobs.extend_from_slice(&words);
            }
        }
        self.cells.shrink_to_fit();
        self.blobs.shrink_to_fit();
    }
}

/// Whether `words` (lon, lat bit pairs) hold exactly `points`, forwards or backwards: the
/// crossing test does not care which way a run of edges is walked.
fn same_points(words: &[u64], points: &[Point]) -> bool {
    let at = |k: usize| (words[2 * k], words[2 * k + 1]);
    let bits = |p: &Point| (p.lon.to_bits(), p.lat.to_bits());
    let n = points.len();
    (0..n).all(|k| at(k) == bits(&points[k])) || (0..n).all(|k| at(k) == bits(&points[n - 1 - k]))
}

/// An edge's ends ordered as `geo` orders them: lower latitude first, ties to the end.
fn edge_ends(vertices: &[Point], e: u32) -> (Point, Point) {
    let (a, b) = (vertices[e as usize], vertices[e as usize + 1]);
    if a.lat < b.lat {
        (a, b)
    } else {
        (b, a)
    }
}

/// What building collects before the cells are written.
struct Builder {
    /// Per slot: the area (+1) claiming the whole cell first; 0 when none.
    claims: Vec<u32>,
    pending: Vec<Pending>,
    runs: Vec<Run>,
    toggles: Vec<f64>,
    /// Every ring, closed (first vertex repeated), so edge `i` is `vertices[i]..vertices[i+1]`.
    vertices: Vec<Point>,
    /// Per polygon, in the order added.
    boxes: Vec<BBox>,
}

impl Builder {
    fn claim(&mut self, slot: usize, area: u32, polygon: u32) {
        if self.claims[slot] == 0 {
            self.claims[slot] = area + 1;
        } else {
            // Overlapping areas (invalid, but answered like the scan would): keep both.
            let mut e = Pending::full(slot, area);
            e.polygon = polygon;
            self.pending.push(e);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn pending(
        &mut self,
        slot: usize,
        area: u32,
        polygon: u32,
        edges: &[u32],
        live: &BTreeMap<OrderedLat, f64>,
        base: bool,
        check_west: bool,
    ) {
        let runs_start = self.runs.len() as u32;
        for &e in edges {
            let own_runs = self.runs.len() as u32 > runs_start;
            match self.runs.last_mut() {
                Some(run) if own_runs && run.start + run.len == e => run.len += 1,
                _ => self.runs.push(Run { start: e, len: 1 }),
            }
        }
        let toggles_start = self.toggles.len() as u32;
        self.toggles.extend(live.values());
        self.pending.push(Pending {
            slot,
            area,
            polygon,
            runs: (runs_start, self.runs.len() as u32),
            toggles: (toggles_start, self.toggles.len() as u32),
            base,
            full: false,
            check_west,
        });
    }
}

impl Pending {
    fn full(slot: usize, area: u32) -> Pending {
        Pending {
            slot,
            area,
            polygon: u32::MAX,
            runs: (0, 0),
            toggles: (0, 0),
            base: true,
            full: true,
            check_west: false,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct EdgeSpan {
    row: usize,
    c0: usize,
    c1: usize,
    edge: u32,
}

/// A latitude as a key ordered like the number (`total_cmp` order; -0.0 folded into 0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OrderedLat(i64);

impl OrderedLat {
    fn of(t: f64) -> Self {
        let t = if t == 0.0 { 0.0 } else { t };
        let bits = t.to_bits() as i64;
        OrderedLat(bits ^ (((bits >> 63) as u64) >> 1) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(min: (f64, f64), max: (f64, f64)) -> MultiPolygon {
        Polygon::rectangle(Point::new(min.0, min.1), Point::new(max.0, max.1))
            .unwrap()
            .into()
    }

    fn scan(areas: &[MultiPolygon], p: Point) -> Option<usize> {
        areas.iter().position(|a| a.contains(p))
    }

    #[test]
    fn ordered_lat_orders_like_numbers() {
        let mut v = [3.5, -1.0, 0.0, -0.0, -7.25, 28.9, 1e-300, -1e-300];
        let mut keys: Vec<_> = v.iter().map(|&t| OrderedLat::of(t)).collect();
        keys.sort();
        v.sort_by(f64::total_cmp);
        let back: Vec<f64> = keys
            .iter()
            .map(|k| {
                v.iter()
                    .copied()
                    .find(|&t| OrderedLat::of(t) == *k)
                    .unwrap()
            })
            .collect();
        assert_eq!(OrderedLat::of(0.0), OrderedLat::of(-0.0));
        assert!(back.windows(2).all(|w| w[0] <= w[1]), "{back:?}");
    }

    #[test]
    fn shared_borders_and_corners_answer_like_the_scan() {
        let areas = vec![
            square((0.0, 0.0), (1.0, 1.0)),
            square((1.0, 0.0), (2.0, 1.0)),
            square((0.0, 1.0), (1.0, 2.0)),
            square((1.0, 1.0), (2.0, 2.0)),
        ];
        let index = SpatialIndex::build(&areas);
        for i in 0..=40 {
            for j in 0..=40 {
                let p = Point::new(f64::from(i) * 0.05, f64::from(j) * 0.05);
                assert_eq!(index.lookup(p), scan(&areas, p), "at {p}");
            }
        }
        assert_eq!(index.lookup(Point::new(1.0, 1.0)), Some(3));
        assert_eq!(
            index.lookup(Point::new(2.0, 0.5)),
            None,
            "east side is outside"
        );
        assert_eq!(index.lookup(Point::new(f64::NAN, 0.5)), None);
    }

    #[test]
    fn overlapping_areas_answer_with_the_first_like_the_scan() {
        let areas = vec![
            square((0.5, 0.5), (1.5, 1.5)),
            square((0.0, 0.0), (2.0, 2.0)),
            square((0.2, 0.2), (0.8, 0.8)),
        ];
        let index = SpatialIndex::build_layers(&[areas.iter().collect()], 16.0);
        for i in 0..=80 {
            for j in 0..=80 {
                let p = Point::new(f64::from(i) * 0.025, f64::from(j) * 0.025);
                assert_eq!(index.lookup(p), scan(&areas, p), "at {p}");
            }
        }
    }

    #[test]
    fn layers_answer_each_for_itself() {
        // Layer 0: two halves; layer 1: four quarters, on one lattice.
        let halves = vec![
            square((0.0, 0.0), (1.0, 2.0)),
            square((1.0, 0.0), (2.0, 2.0)),
        ];
        let quarters = vec![
            square((0.0, 0.0), (1.0, 1.0)),
            square((1.0, 0.0), (2.0, 1.0)),
            square((0.0, 1.0), (1.0, 2.0)),
            square((1.0, 1.0), (2.0, 2.0)),
        ];
        let index =
            SpatialIndex::build_layers(&[halves.iter().collect(), quarters.iter().collect()], 8.0);
        for i in 0..=50 {
            for j in 0..=50 {
                let p = Point::new(f64::from(i) * 0.04, f64::from(j) * 0.04);
                assert_eq!(index.lookup_in(0, p), scan(&halves, p), "halves at {p}");
                assert_eq!(index.lookup_in(1, p), scan(&quarters, p), "quarters at {p}");
            }
        }
        assert_eq!(
            index.lookup_in(2, Point::new(0.5, 0.5)),
            None,
            "no such layer"
        );
    }

    #[test]
    fn empty_index_finds_nothing() {
        let index = SpatialIndex::build(&[]);
        assert_eq!(index.lookup(Point::new(0.0, 0.0)), None);
        assert!(index.memory_bytes() > 0);
    }
}
