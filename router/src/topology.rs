//! Topology of a city's boundaries, checked when the city is loaded: every ring is simple
//! (its edges meet only where consecutive edges share their vertex), the rings of a polygon
//! do not cross, and the areas of one level (communities among communities, grids among
//! grids, ...) do not overlap. Sharing a border or a corner is not overlapping: a tiling is
//! made of nothing else.
//!
//! # How
//!
//! All edges of a level go into a lattice of cells about two typical edges wide, each edge
//! into the cells its path comes near, cells taken tile by tile so that the work stays in
//! cache. Only edges sharing a cell are compared, west to east, so the work is about the
//! number of edges times the few that lie close to each, never all pairs. A border shared
//! by two neighbours comes as twin edges (one edge walked both ways, the polygons on its
//! two sides); twins are compared with other edges once. Checking the benchmark's city
//! (`hub bench route`: 5,000 communities, 50,000 grids, 6.75 M edges) takes about 1.3 s
//! in a release build on one core.
//!
//! Not checked: that holes lie inside their exterior, or rings of one polygon that touch
//! along a line rather than cross (where rings of a polygon touch, the overlap test with
//! other polygons skips that point).
//!
//! Two polygons overlap when
//! * an edge of one properly crosses an edge of the other, or
//! * where their boundaries touch (a vertex of one on an edge or a vertex of the other),
//!   the interior wedges of the two at that point intersect: a collinear shared border is
//!   fine when the polygons lie on its two sides, an overlap when on the same side; or
//! * a vertex of one lies strictly inside the other (one wholly inside the other, with or
//!   without touching; inside a hole is outside the polygon).
//!
//! Points within [`TOLERANCE`] of each other are one point, and a point that close to a
//! segment lies on it. Orientation is the sign of the same cross product `geo` uses.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::geo::{BBox, MultiPolygon, Point, Polygon};

/// Points closer than this (degrees, ≈ 0.1 mm) are one point, and a point this close to a
/// segment lies on it: the margin `spatial_index` keeps around edges. Far above
/// floating-point error on lon/lat coordinates, far below anything a map draws.
pub const TOLERANCE: f64 = 1e-9;

const TOL2: f64 = TOLERANCE * TOLERANCE;
/// How far beyond an edge its cells reach: the tolerance and room for rounding.
const PAD: f64 = 4.0 * TOLERANCE;
/// Upper bound on the cells of a lattice; cells grow when it would be exceeded.
const MAX_CELLS: usize = 1 << 28;
/// Cells per side of a tile: the unit of work of the edge check.
const TILE: usize = 32;
/// Cells of the edge lattice are this many typical edges wide (on the benchmark's city,
/// 2 to 4 did best: fewer cells per edge, few more pairs per cell).
const EDGES_PER_CELL: f64 = 2.0;

/// One polygon of one area: `area` indexes the slice given to [`check_level`], `polygon`
/// the area's polygons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Part {
    pub area: usize,
    pub polygon: usize,
}

/// What is wrong with the boundaries of a level. Rings are numbered as in GeoJSON: 0 is
/// the exterior, then the holes.
#[derive(Debug, Clone, PartialEq)]
pub enum Defect {
    /// A ring with fewer than three distinct corners.
    Degenerate { part: Part, ring: usize },
    /// A ring whose edges cross or touch other than consecutive edges at their common
    /// vertex; `at` is a point where they meet.
    SelfIntersection { part: Part, ring: usize, at: Point },
    /// Two rings of one polygon cross at `at`.
    RingsCross {
        part: Part,
        rings: (usize, usize),
        at: Point,
    },
    /// The interiors of two polygons intersect near `at`; the first part is the lower.
    Overlap { parts: (Part, Part), at: Point },
}

/// Checks the areas of one level: rings simple, rings of a polygon not crossing, no two
/// polygons (of different areas or of one multipolygon) overlapping. Reports the first
/// defect found, self-intersections before overlaps.
pub fn check_level(areas: &[&MultiPolygon]) -> Result<(), Defect> {
    let level = Level::new(areas)?;
    level.check_edges()?;
    level.check_containment()
}

/// A ring ready for checking: consecutive (near-)duplicate points dropped.
struct Ring<'a> {
    points: Cow<'a, [Point]>,
    item: u32,
    /// Ring number in its polygon (0: exterior).
    number: u32,
    /// The polygon's interior lies left of the ring's edges.
    left: bool,
    /// Id of the ring's first edge (edge `i` runs from point `i` to point `i + 1`).
    first_edge: u32,
}

/// One polygon of the level.
struct Item {
    part: Part,
    bbox: BBox,
    rings: std::ops::Range<usize>,
}

struct Level<'a> {
    items: Vec<Item>,
    rings: Vec<Ring<'a>>,
    /// Per edge id, its ring.
    edge_ring: Vec<u32>,
}

/// Buffers of `check_cell`, kept from cell to cell.
#[derive(Default)]
struct Scratch {
    /// Per edge of the cell (in west-to-east order) that is not a twin of an earlier one:
    /// the edge and its twin or `NO_TWIN`.
    groups: Vec<[u32; 2]>,
    taken: Vec<bool>,
}

const NO_TWIN: u32 = u32::MAX;

/// An edge while its cell is examined.
#[derive(Debug, Clone, Copy)]
struct Edge {
    a: Point,
    b: Point,
    id: u32,
    ring: u32,
    index: u32,
    item: u32,
    /// The polygon's interior lies left of the edge.
    left: bool,
    min: Point,
    max: Point,
}

impl<'a> Level<'a> {
    fn new(areas: &[&'a MultiPolygon]) -> Result<Level<'a>, Defect> {
        let mut items = Vec::new();
        let mut rings = Vec::new();
        let mut edges = 0usize;
        for (area, shape) in areas.iter().enumerate() {
            for (polygon, p) in shape.polygons().iter().enumerate() {
                let part = Part { area, polygon };
                let item = u32::try_from(items.len()).expect("fewer than 2^32 polygons");
                let start = rings.len();
                for (r, raw) in polygon_rings(p).enumerate() {
                    let points = clean(raw).ok_or(Defect::Degenerate { part, ring: r })?;
                    let area2 = signed_area2(&points);
                    rings.push(Ring {
                        item,
                        number: u32::try_from(r).expect("fewer than 2^32 rings"),
                        left: (area2 > 0.0) == (r == 0),
                        first_edge: u32::try_from(edges).expect("fewer than 2^32 edges"),
                        points,
                    });
                    edges += rings[rings.len() - 1].points.len();
                }
                items.push(Item {
                    part,
                    bbox: p.bbox(),
                    rings: start..rings.len(),
                });
            }
        }
        u32::try_from(edges).expect("fewer than 2^32 edges");
        let mut edge_ring = Vec::with_capacity(edges);
        for (r, ring) in rings.iter().enumerate() {
            edge_ring.extend(std::iter::repeat_n(r as u32, ring.points.len()));
        }
        Ok(Level {
            items,
            rings,
            edge_ring,
        })
    }

    fn edge(&self, id: u32) -> Edge {
        let ring = self.edge_ring[id as usize];
        let r = &self.rings[ring as usize];
        let index = id - r.first_edge;
        let (a, b) = r.edge(index as usize);
        Edge {
            a,
            b,
            id,
            ring,
            index,
            item: r.item,
            left: r.left,
            min: Point::new(a.lon.min(b.lon), a.lat.min(b.lat)),
            max: Point::new(a.lon.max(b.lon), a.lat.max(b.lat)),
        }
    }

    fn all_edges(&self) -> impl Iterator<Item = (u32, Point, Point)> + '_ {
        self.rings.iter().flat_map(|r| {
            (0..r.points.len()).map(move |i| {
                let (a, b) = r.edge(i);
                (r.first_edge + i as u32, a, b)
            })
        })
    }

    /// Edge against edge, cell by cell: self-intersections, crossing rings, crossing or
    /// overlapping polygons where their boundaries meet. Cells are taken in tiles of
    /// `TILE` × `TILE`, so that the edges and cells being compared stay in cache.
    fn check_edges(&self) -> Result<(), Defect> {
        let Some(bounds) = self.items.iter().map(|i| i.bbox).reduce(|a, b| a.union(&b)) else {
            return Ok(());
        };
        let (sum, count) = self.all_edges().fold((0.0, 0usize), |(s, n), (_, a, b)| {
            let extent = (b.lon - a.lon).abs().max((b.lat - a.lat).abs());
            (s + extent, n + 1)
        });
        let typical = EDGES_PER_CELL * sum / count.max(1) as f64;
        let lattice = Lattice::new(bounds, typical, MAX_CELLS);
        let tile_cols = lattice.cols.div_ceil(TILE);
        let tile_rows = lattice.rows.div_ceil(TILE);

        // Edges by tile (by box), counting-sorted: `tiles[t]..tiles[t + 1]` of `slots`.
        let tiles_of = |a: Point, b: Point| {
            let (c0, c1) = (
                lattice.col(a.lon.min(b.lon) - PAD) / TILE,
                lattice.col(a.lon.max(b.lon) + PAD) / TILE,
            );
            let (r0, r1) = (
                lattice.row(a.lat.min(b.lat) - PAD) / TILE,
                lattice.row(a.lat.max(b.lat) + PAD) / TILE,
            );
            (r0..=r1).flat_map(move |r| (c0..=c1).map(move |c| r * tile_cols + c))
        };
        // Most edges lie in one tile: that one is kept from the counting pass.
        let mut tiles = vec![0u32; tile_cols * tile_rows + 1];
        let mut tile_of = Vec::with_capacity(self.edge_ring.len());
        for (_, a, b) in self.all_edges() {
            let mut first = None;
            for t in tiles_of(a, b) {
                tiles[t] += 1;
                first = if first.is_none() {
                    Some(t as u32)
                } else {
                    Some(u32::MAX)
                };
            }
            tile_of.push(first.unwrap_or(u32::MAX));
        }
        let mut total = 0u32;
        for t in tiles.iter_mut() {
            total = total.checked_add(*t).expect("fewer than 2^32 edge tiles");
            *t = total;
        }
        let mut slots = vec![0u32; total as usize];
        for (id, a, b) in self.all_edges() {
            let mut place = |t: usize| {
                tiles[t] -= 1;
                slots[tiles[t] as usize] = id;
            };
            match tile_of[id as usize] {
                u32::MAX => tiles_of(a, b).for_each(place),
                t => place(t as usize),
            }
        }
        drop(tile_of);

        // Points where two rings of one polygon touch: the interior there is not one wedge.
        let mut touches: HashMap<u32, Vec<Point>> = HashMap::new();
        let mut overlap = None;
        let mut local: Vec<Edge> = Vec::new();
        let mut cells = vec![0u32; TILE * TILE + 1];
        let mut cell_slots: Vec<u32> = Vec::new();
        let mut placed: Vec<(u32, u32)> = Vec::new();
        let mut scratch = Scratch::default();
        for tile in 0..tile_cols * tile_rows {
            let ids = &slots[tiles[tile] as usize..tiles[tile + 1] as usize];
            if ids.len() < 2 {
                continue;
            }
            local.clear();
            local.extend(ids.iter().map(|&id| self.edge(id)));
            let (tr, tc) = (tile / tile_cols, tile % tile_cols);
            let rows = tr * TILE..((tr + 1) * TILE).min(lattice.rows);
            let cols = tc * TILE..((tc + 1) * TILE).min(lattice.cols);
            let local_cell = |row: usize, col: usize| (row - rows.start) * TILE + col - cols.start;

            // The tile's edges by cell, counting-sorted as above.
            cells.fill(0);
            placed.clear();
            for (k, e) in local.iter().enumerate() {
                lattice.segment_cells(e.a, e.b, &rows, &cols, |row, col| {
                    let c = local_cell(row, col);
                    cells[c] += 1;
                    placed.push((c as u32, k as u32));
                });
            }
            let mut n = 0u32;
            for c in cells.iter_mut() {
                n += *c;
                *c = n;
            }
            cell_slots.clear();
            cell_slots.resize(n as usize, 0);
            for &(c, k) in &placed {
                cells[c as usize] -= 1;
                cell_slots[cells[c as usize] as usize] = k;
            }

            for row in rows.clone() {
                for col in cols.clone() {
                    let c = local_cell(row, col);
                    let here = &mut cell_slots[cells[c] as usize..cells[c + 1] as usize];
                    if here.len() < 2 {
                        continue;
                    }
                    let cell = row * lattice.cols + col;
                    self.check_cell(
                        here,
                        &local,
                        cell,
                        &lattice,
                        &mut touches,
                        &mut scratch,
                        &mut overlap,
                    )?;
                }
            }
        }
        overlap.map_or(Ok(()), Err)
    }

    /// The edges `here` of one cell against each other (see `check_edges`); the first
    /// overlap goes to `overlap` unless one is there already.
    #[allow(clippy::too_many_arguments)]
    fn check_cell(
        &self,
        here: &mut [u32],
        local: &[Edge],
        cell: usize,
        lattice: &Lattice,
        touches: &mut HashMap<u32, Vec<Point>>,
        scratch: &mut Scratch,
        overlap: &mut Option<Defect>,
    ) -> Result<(), Defect> {
        // West to east: a pair is looked at only while their lon ranges meet.
        here.sort_unstable_by(|&x, &y| {
            local[x as usize]
                .min
                .lon
                .total_cmp(&local[y as usize].min.lon)
        });
        // A border shared by two polygons comes as twins, one edge walked both ways: one
        // geometry, compared with the others once.
        let Scratch { groups, taken } = scratch;
        groups.clear();
        taken.clear();
        taken.resize(here.len(), false);
        for k in 0..here.len() {
            if taken[k] {
                continue;
            }
            let e = &local[here[k] as usize];
            let mut twin = NO_TWIN;
            for j in k + 1..here.len() {
                let g = &local[here[j] as usize];
                if g.min.lon != e.min.lon {
                    break;
                }
                if !taken[j] && is_twin(e, g) {
                    twin = here[j];
                    taken[j] = true;
                    break;
                }
            }
            groups.push([here[k], twin]);
        }

        let mut touched_here = false;
        let mut found = None;
        for (k, g) in groups.iter().enumerate() {
            let e = &local[g[0] as usize];
            for h in &groups[k + 1..] {
                let f = &local[h[0] as usize];
                if f.min.lon > e.max.lon + PAD {
                    break;
                }
                if !lats_meet(e, f) || Sides::of(e, f).is_none() {
                    continue;
                }
                if g[1] != NO_TWIN && h[1] != NO_TWIN {
                    let (e2, f2) = (&local[g[1] as usize], &local[h[1] as usize]);
                    // Two borders between the same two polygons (one continuing the other):
                    // what one polygon's edges show, the other's show too.
                    if e.item == f.item && e2.item == f2.item {
                        touched_here |= self.same_polygon(e, f, touches)?;
                        continue;
                    }
                    if e.item == f2.item && e2.item == f.item {
                        touched_here |= self.same_polygon(e, f2, touches)?;
                        continue;
                    }
                }
                for &x in g.iter().filter(|&&x| x != NO_TWIN) {
                    let e = &local[x as usize];
                    for &y in h.iter().filter(|&&y| y != NO_TWIN) {
                        let f = &local[y as usize];
                        if e.item == f.item {
                            touched_here |= self.same_polygon(e, f, touches)?;
                        } else if overlap.is_none() && found.is_none() {
                            found = self
                                .polygons_meet(e, f, cell, lattice, touches)
                                .map(|at| self.overlap(e.item, f.item, at));
                        }
                    }
                }
            }
        }
        if found.is_some() && touched_here {
            // Judged again, now that every touch of the cell is known.
            found = self.first_overlap(here, local, cell, lattice, touches);
        }
        if overlap.is_none() {
            *overlap = found;
        }
        Ok(())
    }

    /// The first overlap shown by the edges `here` of one cell.
    fn first_overlap(
        &self,
        here: &[u32],
        local: &[Edge],
        cell: usize,
        lattice: &Lattice,
        touches: &HashMap<u32, Vec<Point>>,
    ) -> Option<Defect> {
        here.iter().enumerate().find_map(|(k, &x)| {
            let e = &local[x as usize];
            here[k + 1..].iter().find_map(|&y| {
                let f = &local[y as usize];
                (e.item != f.item && boxes_meet(e, f))
                    .then(|| self.polygons_meet(e, f, cell, lattice, touches))
                    .flatten()
                    .map(|at| self.overlap(e.item, f.item, at))
            })
        })
    }

    /// Two edges of one polygon. Whether they touch where they belong to different rings
    /// (recorded in `touches`).
    fn same_polygon(
        &self,
        e: &Edge,
        f: &Edge,
        touches: &mut HashMap<u32, Vec<Point>>,
    ) -> Result<bool, Defect> {
        let ring = &self.rings[e.ring as usize];
        let part = self.items[e.item as usize].part;
        let crossing = |at: Point| Defect::SelfIntersection {
            part,
            ring: ring.number as usize,
            at: report(at),
        };
        let Some(sides) = Sides::of(e, f) else {
            return Ok(false);
        };
        if e.ring == f.ring {
            let n = ring.points.len() as u32;
            let meet = if f.index == (e.index + 1) % n {
                // f follows e: they share e.b = f.a, and may only fold back onto each other.
                [(f.b, sides.fb, e), (e.a, sides.ea, f)]
                    .into_iter()
                    .find(|&(p, side, s)| on_edge(p, side, s))
                    .map(|(p, _, _)| p)
            } else if e.index == (f.index + 1) % n {
                [(e.b, sides.eb, f), (f.a, sides.fa, e)]
                    .into_iter()
                    .find(|&(p, side, s)| on_edge(p, side, s))
                    .map(|(p, _, _)| p)
            } else {
                sides.contact(e, f)
            };
            return meet.map_or(Ok(false), |at| Err(crossing(at)));
        }
        if sides.proper() {
            let at = crossing_point(e, f);
            let other = self.rings[f.ring as usize].number as usize;
            let (r0, r1) = (ring.number as usize, other);
            return Err(Defect::RingsCross {
                part,
                rings: (r0.min(r1), r0.max(r1)),
                at: report(at),
            });
        }
        let contact = sides.contact(e, f);
        if let Some(at) = contact {
            touches.entry(e.item).or_default().push(at);
        }
        Ok(contact.is_some())
    }

    /// Whether edges of two polygons show an overlap; where. Contacts are judged in the
    /// cell of their point only, so each is judged once however many cells the edges share.
    fn polygons_meet(
        &self,
        e: &Edge,
        f: &Edge,
        cell: usize,
        lattice: &Lattice,
        touches: &HashMap<u32, Vec<Point>>,
    ) -> Option<Point> {
        if is_twin(e, f) {
            return None;
        }
        let sides = Sides::of(e, f)?;
        if sides.proper() {
            return Some(crossing_point(e, f));
        }
        let touched = |item: u32, p: Point| {
            touches
                .get(&item)
                .is_some_and(|points| points.iter().any(|&q| near(p, q)))
        };
        // A vertex of one polygon on the other's edge: each vertex is taken as the start
        // of its edge, and a vertex meeting a vertex is judged at the edges starting there.
        for (v, w, side) in [(e, f, sides.ea), (f, e, sides.fa)] {
            if !on_edge(v.a, side, w) || near(v.a, w.b) || lattice.cell_of(v.a) != cell {
                continue;
            }
            let at_vertex = near(v.a, w.a);
            if at_vertex && v.id > w.id {
                continue; // a vertex on a vertex is judged once, from the lower edge id
            }
            if touched(v.item, v.a) || touched(w.item, v.a) {
                continue;
            }
            let own = self.vertex_wedge(v);
            let other = if at_vertex {
                self.vertex_wedge(w)
            } else {
                let left = self.rings[w.ring as usize].left;
                Wedge::of_edge(w.a, w.b, v.a, left)
            };
            if own.meets(&other) {
                return Some(v.a);
            }
        }
        None
    }

    /// The interior wedge of `e`'s polygon at `e.a`.
    fn vertex_wedge(&self, e: &Edge) -> Wedge {
        let ring = &self.rings[e.ring as usize];
        let n = ring.points.len();
        let prev = ring.points[(e.index as usize + n - 1) % n];
        Wedge::of_vertex(prev, e.a, e.b, ring.left)
    }

    fn overlap(&self, a: u32, b: u32, at: Point) -> Defect {
        let (p, q) = (self.items[a as usize].part, self.items[b as usize].part);
        Defect::Overlap {
            parts: (p.min(q), p.max(q)),
            at: report(at),
        }
    }

    /// A polygon wholly or partly inside another without their edges showing it: the first
    /// vertex of every ring against the polygons whose box holds it.
    fn check_containment(&self) -> Result<(), Defect> {
        let Some(bounds) = self.items.iter().map(|i| i.bbox).reduce(|a, b| a.union(&b)) else {
            return Ok(());
        };
        let typical = self
            .items
            .iter()
            .map(|i| (i.bbox.max_lon - i.bbox.min_lon).max(i.bbox.max_lat - i.bbox.min_lat))
            .sum::<f64>()
            / self.items.len() as f64;
        let lattice = Lattice::new(bounds, typical, 4 * self.items.len());
        let mut cells: Vec<Vec<u32>> = vec![Vec::new(); lattice.len()];
        for (k, item) in self.items.iter().enumerate() {
            let b = item.bbox;
            for row in lattice.row(b.min_lat)..=lattice.row(b.max_lat) {
                for col in lattice.col(b.min_lon)..=lattice.col(b.max_lon) {
                    cells[row * lattice.cols + col].push(k as u32);
                }
            }
        }
        for (k, item) in self.items.iter().enumerate() {
            for ring in &self.rings[item.rings.clone()] {
                let p = ring.points[0];
                for &other in &cells[lattice.cell_of(p)] {
                    if other as usize != k
                        && self.items[other as usize].bbox.contains(p)
                        && self.strictly_inside(p, other)
                    {
                        return Err(self.overlap(k as u32, other, p));
                    }
                }
            }
        }
        Ok(())
    }

    /// `p` is inside polygon `item` and not on its boundary.
    fn strictly_inside(&self, p: Point, item: u32) -> bool {
        let mut inside = false;
        for ring in &self.rings[self.items[item as usize].rings.clone()] {
            let points = &ring.points;
            for (i, &a) in points.iter().enumerate() {
                let b = if i + 1 < points.len() {
                    points[i + 1]
                } else {
                    points[0]
                };
                let (low, high) = if a.lat < b.lat { (a, b) } else { (b, a) };
                if p.lat < low.lat - TOLERANCE || p.lat > high.lat + TOLERANCE {
                    continue; // neither on the edge nor level with it
                }
                if p.lon <= a.lon.max(b.lon) + TOLERANCE
                    && p.lon >= a.lon.min(b.lon) - TOLERANCE
                    && on_segment(p, a, b)
                {
                    return false;
                }
                // geo's crossing test, half-open in latitude.
                if low.lat <= p.lat && p.lat < high.lat {
                    let cross = (high.lon - low.lon) * (p.lat - low.lat)
                        - (high.lat - low.lat) * (p.lon - low.lon);
                    if cross > 0.0 {
                        inside = !inside;
                    }
                }
            }
        }
        inside
    }
}

impl Ring<'_> {
    fn edge(&self, i: usize) -> (Point, Point) {
        let n = self.points.len();
        (self.points[i], self.points[(i + 1) % n])
    }
}

fn polygon_rings(p: &Polygon) -> impl Iterator<Item = &[Point]> {
    std::iter::once(p.exterior()).chain(p.holes().iter().map(Vec::as_slice))
}

/// The ring without points that (nearly) repeat the one before; `None` when fewer than
/// three distinct points are left.
fn clean(ring: &[Point]) -> Option<Cow<'_, [Point]>> {
    let n = ring.len();
    let repeats = |i: usize| near(ring[i], ring[(i + n - 1) % n]);
    let points: Cow<'_, [Point]> = if (0..n).any(repeats) {
        let mut kept: Vec<Point> = Vec::with_capacity(n);
        for &p in ring {
            if kept.last().is_none_or(|&q| !near(p, q)) {
                kept.push(p);
            }
        }
        while kept.len() > 1 && near(kept[kept.len() - 1], kept[0]) {
            kept.pop();
        }
        Cow::Owned(kept)
    } else {
        Cow::Borrowed(ring)
    };
    (points.len() >= 3).then_some(points)
}

/// Twice the signed area (positive counter-clockwise), relative to the first point.
fn signed_area2(ring: &[Point]) -> f64 {
    let o = ring[0];
    (1..ring.len().saturating_sub(1))
        .map(|i| {
            let (a, b) = (ring[i], ring[i + 1]);
            (a.lon - o.lon) * (b.lat - o.lat) - (a.lat - o.lat) * (b.lon - o.lon)
        })
        .sum()
}

/// The point as reported: rounded to 1e-7 degree (≈ 1 cm).
fn report(p: Point) -> Point {
    let r = |x: f64| (x * 1e7).round() / 1e7;
    Point::new(r(p.lon), r(p.lat))
}

fn near(p: Point, q: Point) -> bool {
    let (dx, dy) = (p.lon - q.lon, p.lat - q.lat);
    dx * dx + dy * dy <= TOL2
}

/// Which side of the line through `a` and `b` the point `p` lies on: 1 left, -1 right, 0
/// within the tolerance of the line.
fn side(p: Point, a: Point, b: Point) -> i8 {
    let (dx, dy) = (b.lon - a.lon, b.lat - a.lat);
    let cross = dx * (p.lat - a.lat) - dy * (p.lon - a.lon);
    if cross * cross <= TOL2 * (dx * dx + dy * dy) {
        0
    } else if cross > 0.0 {
        1
    } else {
        -1
    }
}

/// `p` lies on the segment from `a` to `b` (within the tolerance).
fn on_segment(p: Point, a: Point, b: Point) -> bool {
    if near(p, a) || near(p, b) {
        return true;
    }
    let (dx, dy) = (b.lon - a.lon, b.lat - a.lat);
    let dot = (p.lon - a.lon) * dx + (p.lat - a.lat) * dy;
    side(p, a, b) == 0 && dot > 0.0 && dot < dx * dx + dy * dy
}

/// One edge of two polygons that lie on its two sides: a border they share.
fn is_twin(e: &Edge, f: &Edge) -> bool {
    e.a == f.b && e.b == f.a && e.left == f.left && e.item != f.item
}

fn lats_meet(e: &Edge, f: &Edge) -> bool {
    e.min.lat <= f.max.lat + PAD && f.min.lat <= e.max.lat + PAD
}

fn boxes_meet(e: &Edge, f: &Edge) -> bool {
    e.min.lon <= f.max.lon + PAD
        && f.min.lon <= e.max.lon + PAD
        && e.min.lat <= f.max.lat + PAD
        && f.min.lat <= e.max.lat + PAD
}

/// `p`, on side `side` of edge `s`'s line, lies on the edge (within the tolerance).
fn on_edge(p: Point, side: i8, s: &Edge) -> bool {
    side == 0 && {
        let (dx, dy) = (s.b.lon - s.a.lon, s.b.lat - s.a.lat);
        let dot = (p.lon - s.a.lon) * dx + (p.lat - s.a.lat) * dy;
        (dot > 0.0 && dot < dx * dx + dy * dy) || near(p, s.a) || near(p, s.b)
    }
}

/// The sides of the lines of two edges `e` and `f` that the other's ends lie on.
#[derive(Debug, Clone, Copy)]
struct Sides {
    /// Of `f.a`, `f.b` relative to `e`; of `e.a`, `e.b` relative to `f`.
    fa: i8,
    fb: i8,
    ea: i8,
    eb: i8,
}

impl Sides {
    /// `None` when the edges cannot meet (one lies wholly on one side of the other's line).
    fn of(e: &Edge, f: &Edge) -> Option<Sides> {
        let (fa, fb) = (side(f.a, e.a, e.b), side(f.b, e.a, e.b));
        if fa * fb > 0 {
            return None;
        }
        let (ea, eb) = (side(e.a, f.a, f.b), side(e.b, f.a, f.b));
        (ea * eb <= 0).then_some(Sides { fa, fb, ea, eb })
    }

    /// Each edge passes strictly from one side of the other to the other side.
    fn proper(&self) -> bool {
        self.fa * self.fb < 0 && self.ea * self.eb < 0
    }

    /// A point the two edges have in common, if any.
    fn contact(&self, e: &Edge, f: &Edge) -> Option<Point> {
        if self.proper() {
            return Some(crossing_point(e, f));
        }
        [
            (f.a, self.fa, e),
            (f.b, self.fb, e),
            (e.a, self.ea, f),
            (e.b, self.eb, f),
        ]
        .into_iter()
        .find(|&(p, side, s)| on_edge(p, side, s))
        .map(|(p, _, _)| p)
    }
}

/// Where two properly crossing edges cross.
fn crossing_point(e: &Edge, f: &Edge) -> Point {
    let (ex, ey) = (e.b.lon - e.a.lon, e.b.lat - e.a.lat);
    let (fx, fy) = (f.b.lon - f.a.lon, f.b.lat - f.a.lat);
    let t = ((f.a.lon - e.a.lon) * fy - (f.a.lat - e.a.lat) * fx) / (ex * fy - ey * fx);
    let t = t.clamp(0.0, 1.0);
    Point::new(e.a.lon + t * ex, e.a.lat + t * ey)
}

/// The directions, around a boundary point, in which a polygon's interior lies: the open
/// angle swept counter-clockwise from `from` to `to`.
#[derive(Debug, Clone, Copy)]
struct Wedge {
    from: (f64, f64),
    to: (f64, f64),
}

impl Wedge {
    /// At vertex `v` between edges `prev → v` and `v → next`.
    fn of_vertex(prev: Point, v: Point, next: Point, left: bool) -> Wedge {
        let (back, ahead) = (direction(v, prev), direction(v, next));
        if left {
            Wedge {
                from: ahead,
                to: back,
            }
        } else {
            Wedge {
                from: back,
                to: ahead,
            }
        }
    }

    /// At a point `v` inside edge `a → b`: a half-plane.
    fn of_edge(a: Point, b: Point, v: Point, left: bool) -> Wedge {
        Wedge::of_vertex(a, v, b, left)
    }

    /// Whether the two open wedges share a direction. Rays within the tolerance of each
    /// other are one ray, so wedges that only share a side (neighbours) do not meet.
    fn meets(&self, other: &Wedge) -> bool {
        // In angles counter-clockwise from `self.to`, the gap outside `self` is [0, gap];
        // `other` stays out of `self` when it starts and ends within the gap, in order.
        let base = pseudo_angle(self.to);
        let angle = |d: (f64, f64)| {
            let a = (pseudo_angle(d) - base).rem_euclid(4.0);
            if a >= 4.0 {
                0.0
            } else {
                a
            }
        };
        let gap = angle(self.from);
        let start = if same_ray(other.from, self.to) {
            0.0
        } else {
            angle(other.from)
        };
        let end = if same_ray(other.to, self.from) {
            gap
        } else {
            angle(other.to)
        };
        !(start <= end && end <= gap)
    }
}

fn direction(from: Point, to: Point) -> (f64, f64) {
    (to.lon - from.lon, to.lat - from.lat)
}

/// A monotonic stand-in for the angle of a direction, in [0, 4) counter-clockwise from +lon.
fn pseudo_angle((dx, dy): (f64, f64)) -> f64 {
    let p = dx / (dx.abs() + dy.abs());
    if dy < 0.0 {
        3.0 + p
    } else {
        1.0 - p
    }
}

/// Two directions from one point whose rays coincide within the tolerance: the nearer end
/// lies within it of the farther one's line.
fn same_ray(u: (f64, f64), w: (f64, f64)) -> bool {
    let dot = u.0 * w.0 + u.1 * w.1;
    let cross = u.0 * w.1 - u.1 * w.0;
    let longest = (u.0 * u.0 + u.1 * u.1).max(w.0 * w.0 + w.1 * w.1);
    dot > 0.0 && cross * cross <= TOL2 * longest
}

/// A lattice of cells over a box.
struct Lattice {
    lon0: f64,
    lat0: f64,
    height: f64,
    per_width: f64,
    per_height: f64,
    cols: usize,
    rows: usize,
}

impl Lattice {
    /// Cells about `typical` wide, at most about `max_cells` of them.
    fn new(bounds: BBox, typical: f64, max_cells: usize) -> Lattice {
        let max_cells = max_cells.max(1);
        let w = bounds.max_lon - bounds.min_lon;
        let h = bounds.max_lat - bounds.min_lat;
        let size = typical
            .max((w * h / max_cells as f64).sqrt())
            .max(w.max(h) / max_cells as f64)
            .max(1e-7);
        let cols = ((w / size).ceil() as usize).clamp(1, max_cells);
        let rows = ((h / size).ceil() as usize).clamp(1, (max_cells / cols).max(1));
        let height = size.max(h / rows as f64);
        Lattice {
            lon0: bounds.min_lon,
            lat0: bounds.min_lat,
            height,
            per_width: 1.0 / size,
            per_height: 1.0 / height,
            cols,
            rows,
        }
    }

    fn len(&self) -> usize {
        self.cols * self.rows
    }

    // Truncation is the floor for the non-negative; `as` saturates, NaN goes to 0.
    fn col(&self, lon: f64) -> usize {
        (((lon - self.lon0) * self.per_width).max(0.0) as usize).min(self.cols - 1)
    }

    fn row(&self, lat: f64) -> usize {
        (((lat - self.lat0) * self.per_height).max(0.0) as usize).min(self.rows - 1)
    }

    fn cell_of(&self, p: Point) -> usize {
        self.row(p.lat) * self.cols + self.col(p.lon)
    }

    /// Calls `f(row, col)` with every cell of `rows` × `cols` that comes within `PAD` of the
    /// segment (and perhaps a few more), each once.
    fn segment_cells(
        &self,
        a: Point,
        b: Point,
        rows: &std::ops::Range<usize>,
        cols: &std::ops::Range<usize>,
        mut f: impl FnMut(usize, usize),
    ) {
        let (lo_lat, hi_lat) = (a.lat.min(b.lat), a.lat.max(b.lat));
        let (lo_lon, hi_lon) = (a.lon.min(b.lon), a.lon.max(b.lon));
        let (south, north) = (self.row(lo_lat - PAD), self.row(hi_lat + PAD));
        let rows = south.max(rows.start)..=north.min(rows.end - 1);
        let dy = b.lat - a.lat;
        if south == north || dy == 0.0 {
            let c0 = self.col(lo_lon - PAD).max(cols.start);
            let c1 = self.col(hi_lon + PAD).min(cols.end - 1);
            for row in rows {
                for col in c0..=c1 {
                    f(row, col);
                }
            }
            return;
        }
        let slope = (b.lon - a.lon) / dy;
        let lon_at = |lat: f64| a.lon + (lat.clamp(lo_lat, hi_lat) - a.lat) * slope;
        for row in rows {
            // The part of the segment within PAD of the row.
            let x0 = lon_at(self.lat0 + row as f64 * self.height - PAD);
            let x1 = lon_at(self.lat0 + (row + 1) as f64 * self.height + PAD);
            let (west, east) = (x0.min(x1).max(lo_lon), x0.max(x1).min(hi_lon));
            let c0 = self.col(west - PAD).max(cols.start);
            let c1 = self.col(east + PAD).min(cols.end - 1);
            for col in c0..=c1 {
                f(row, col);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lon: f64, lat: f64) -> Point {
        Point::new(lon, lat)
    }

    fn ring(points: &[(f64, f64)]) -> Vec<Point> {
        let mut ring: Vec<Point> = points.iter().map(|&(x, y)| p(x, y)).collect();
        ring.push(ring[0]);
        ring
    }

    fn shape(exterior: &[(f64, f64)], holes: &[&[(f64, f64)]]) -> MultiPolygon {
        Polygon::new(ring(exterior), holes.iter().map(|h| ring(h)).collect())
            .unwrap()
            .into()
    }

    fn square(x: f64, y: f64, size: f64) -> MultiPolygon {
        shape(
            &[(x, y), (x + size, y), (x + size, y + size), (x, y + size)],
            &[],
        )
    }

    fn check(areas: &[MultiPolygon]) -> Result<(), Defect> {
        check_level(&areas.iter().collect::<Vec<_>>())
    }

    fn part(area: usize) -> Part {
        Part { area, polygon: 0 }
    }

    #[test]
    fn bow_tie_crosses_itself_where_its_edges_cross() {
        let bow_tie = shape(&[(0.0, 0.0), (2.0, 2.0), (2.0, 0.0), (0.0, 2.0)], &[]);
        assert_eq!(
            check(&[bow_tie]),
            Err(Defect::SelfIntersection {
                part: part(0),
                ring: 0,
                at: p(1.0, 1.0)
            })
        );
    }

    #[test]
    fn a_ring_touching_itself_or_folding_back_is_refused() {
        // A vertex on a non-adjacent edge (a figure eight pinched at (1, 0)).
        let pinched = shape(
            &[
                (0.0, 0.0),
                (1.0, 0.0),
                (2.0, 0.0),
                (2.0, 1.0),
                (1.0, 0.0),
                (0.0, 1.0),
            ],
            &[],
        );
        assert!(matches!(
            check(&[pinched]),
            Err(Defect::SelfIntersection { at, .. }) if at == p(1.0, 0.0)
        ));
        // A spike: the ring goes out along a line and comes back on it.
        let spike = shape(
            &[(0.0, 0.0), (2.0, 0.0), (3.0, 0.0), (2.5, 0.0), (2.0, 1.0)],
            &[],
        );
        assert!(matches!(
            check(&[spike]),
            Err(Defect::SelfIntersection { .. })
        ));
        // Repeated points are not a spike.
        let repeated = shape(
            &[(0.0, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)],
            &[],
        );
        assert_eq!(check(&[repeated]), Ok(()));
        let flat = shape(&[(0.0, 0.0), (1.0, 0.0), (1.0, 0.0)], &[]);
        assert_eq!(
            check(&[flat]),
            Err(Defect::Degenerate {
                part: part(0),
                ring: 0
            })
        );
    }

    #[test]
    fn a_hole_crossing_the_exterior_is_refused_touching_it_is_not() {
        let crossing = shape(
            &[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)],
            &[&[(3.0, 1.0), (5.0, 1.0), (5.0, 2.0), (3.0, 2.0)]],
        );
        // Either crossing point will do.
        assert!(matches!(
            check(&[crossing]),
            Err(Defect::RingsCross { part: Part { area: 0, polygon: 0 }, rings: (0, 1), at })
                if at == p(4.0, 1.0) || at == p(4.0, 2.0)
        ));
        let touching = shape(
            &[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)],
            &[&[(2.0, 0.0), (3.0, 1.0), (1.0, 1.0)]],
        );
        assert_eq!(check(&[touching]), Ok(()));
    }

    #[test]
    fn a_lattice_of_squares_sharing_borders_and_corners_is_fine() {
        let mut squares = Vec::new();
        for j in 0..4 {
            for i in 0..5 {
                squares.push(square(f64::from(i), f64::from(j), 1.0));
            }
        }
        // Two half-width squares against one side of a unit square (T-junctions), and a
        // square meeting the lattice at one corner only.
        squares.push(shape(
            &[(5.0, 0.0), (6.0, 0.0), (6.0, 0.5), (5.0, 0.5)],
            &[],
        ));
        squares.push(shape(
            &[(5.0, 0.5), (6.0, 0.5), (6.0, 1.0), (5.0, 1.0)],
            &[],
        ));
        squares.push(square(5.0, 4.0, 1.0));
        assert_eq!(check(&squares), Ok(()));
    }

    #[test]
    fn a_square_in_a_hole_is_fine_and_one_on_the_polygon_is_not() {
        let holed = shape(
            &[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)],
            &[&[(1.0, 1.0), (1.0, 3.0), (3.0, 3.0), (3.0, 1.0)]],
        );
        // Filling the hole exactly, strictly inside it, touching its side from inside.
        assert_eq!(check(&[holed.clone(), square(1.0, 1.0, 2.0)]), Ok(()));
        assert_eq!(check(&[holed.clone(), square(1.5, 1.5, 1.0)]), Ok(()));
        assert_eq!(check(&[holed.clone(), square(1.0, 1.5, 1.0)]), Ok(()));
        // On the polygon itself: wholly inside, inside touching its outer side, straddling
        // the hole's side.
        for (other, places) in [
            (square(0.25, 0.25, 0.5), vec![p(0.25, 0.25)]),
            (square(0.0, 0.25, 0.5), vec![p(0.0, 0.25), p(0.0, 0.75)]),
            (square(0.5, 1.5, 1.0), vec![p(1.0, 1.5), p(1.0, 2.5)]),
        ] {
            match check(&[holed.clone(), other]) {
                Err(Defect::Overlap { parts, at }) => {
                    assert_eq!(parts, (part(0), part(1)));
                    assert!(places.contains(&at), "{at}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn overlapping_neighbours_are_refused() {
        // Properly crossing edges.
        assert!(matches!(
            check(&[square(0.0, 0.0, 2.0), square(1.0, 1.0, 2.0)]),
            Err(Defect::Overlap { parts, at }) if parts == (part(0), part(1)) && (at == p(2.0, 1.0) || at == p(1.0, 2.0))
        ));
        // The same square twice, also walked the other way round (every edge then has a
        // reversed twin, as a shared border has, but both interiors lie on its one side).
        assert!(matches!(
            check(&[square(0.0, 0.0, 1.0), rectangle(0, 0, 1, 1, true)]),
            Err(Defect::Overlap { .. })
        ));
        // The same square twice; a square sharing a border but reaching over it.
        assert!(matches!(
            check(&[square(0.0, 0.0, 1.0), square(0.0, 0.0, 1.0)]),
            Err(Defect::Overlap { .. })
        ));
        assert!(matches!(
            check(&[
                square(0.0, 0.0, 2.0),
                shape(&[(0.0, 0.0), (2.0, 0.0), (1.0, 1.0)], &[])
            ]),
            Err(Defect::Overlap { .. })
        ));
        // A diamond inside a square, touching its four sides at its corners only.
        let diamond = shape(&[(1.0, 0.0), (2.0, 1.0), (1.0, 2.0), (0.0, 1.0)], &[]);
        assert!(matches!(
            check(&[square(0.0, 0.0, 2.0), diamond]),
            Err(Defect::Overlap { .. })
        ));
        // Two polygons of one multipolygon.
        let two = MultiPolygon::new(vec![
            Polygon::rectangle(p(0.0, 0.0), p(2.0, 2.0)).unwrap(),
            Polygon::rectangle(p(1.0, 1.0), p(3.0, 3.0)).unwrap(),
        ])
        .unwrap();
        assert!(matches!(
            check(&[two]),
            Err(Defect::Overlap { parts, .. }) if parts == (part(0), Part { area: 0, polygon: 1 })
        ));
    }

    #[test]
    fn wedges_meet_unless_they_only_share_a_side() {
        let v = p(0.0, 0.0);
        let quadrant = |from: (f64, f64), to: (f64, f64)| Wedge { from, to };
        let ne = quadrant((1.0, 0.0), (0.0, 1.0));
        let nw = quadrant((0.0, 1.0), (-1.0, 0.0));
        let sw = quadrant((-1.0, 0.0), (0.0, -1.0));
        let north = Wedge::of_edge(p(1.0, 0.0), p(-1.0, 0.0), v, false);
        let south = Wedge::of_edge(p(-1.0, 0.0), p(1.0, 0.0), v, false);
        assert!(!ne.meets(&nw) && !nw.meets(&ne));
        assert!(!ne.meets(&sw) && !sw.meets(&ne));
        assert!(ne.meets(&ne));
        assert!(north.meets(&ne) && north.meets(&nw) && !north.meets(&sw));
        assert!(!north.meets(&south) && !south.meets(&north));
        // Rays of different lengths along one line are one ray.
        let ne_long = quadrant((3.0, 0.0), (0.0, 0.5));
        assert!(!ne_long.meets(&nw) && !nw.meets(&ne_long));
        let narrow = quadrant((1.0, 1.0), (1.0, 1.0000001));
        assert!(narrow.meets(&ne) && ne.meets(&narrow) && !narrow.meets(&nw));
    }

    /// Corner, width, height, clockwise, and a hole's offset from the corner and size.
    type HoledRectangle = (u8, u8, u8, u8, bool, Option<(u8, u8, u8, u8)>);

    /// A rectangle with integer corners, its ring walked either way round.
    fn rectangle(x0: u8, y0: u8, w: u8, h: u8, clockwise: bool) -> MultiPolygon {
        let (x0, y0, x1, y1) = (
            f64::from(x0),
            f64::from(y0),
            f64::from(x0 + w),
            f64::from(y0 + h),
        );
        let mut corners = vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1)];
        if clockwise {
            corners.reverse();
        }
        shape(&corners, &[])
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Rectangles on an integer lattice share borders, corners and parts of sides all
        /// the time: exactly those whose interiors intersect are refused.
        #[test]
        fn rectangles_overlap_exactly_when_their_interiors_meet(
            rects in proptest::collection::vec((0u8..5, 0u8..5, 1u8..4, 1u8..4, proptest::bool::ANY), 2..6)
        ) {
            let areas: Vec<MultiPolygon> = rects
                .iter()
                .map(|&(x, y, w, h, cw)| rectangle(x, y, w, h, cw))
                .collect();
            let meets = |i: usize, j: usize| {
                let (a, b) = (rects[i], rects[j]);
                a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
            };
            let overlapping: Vec<(usize, usize)> = (0..rects.len())
                .flat_map(|i| (i + 1..rects.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| meets(i, j))
                .collect();
            match check(&areas) {
                Ok(()) => proptest::prop_assert!(overlapping.is_empty(), "{overlapping:?} not found"),
                Err(Defect::Overlap { parts, .. }) => proptest::prop_assert!(
                    overlapping.contains(&(parts.0.area, parts.1.area)),
                    "{parts:?} reported, overlapping: {overlapping:?}"
                ),
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }

        /// The same with holes (strictly inside their exterior), and other rectangles
        /// filling them, inside them or straddling their sides.
        #[test]
        fn holed_rectangles_overlap_exactly_when_their_interiors_meet(
            rects in proptest::collection::vec(
                (0u8..6, 0u8..6, 1u8..6, 1u8..6, proptest::bool::ANY, proptest::option::of((0u8..4, 0u8..4, 1u8..4, 1u8..4))),
                2..5,
            )
        ) {
            // A hole (dx, dy, w, h) from the corner, kept when it fits strictly inside.
            let hole_of = |&(x, y, w, h, _, hole): &HoledRectangle| {
                hole.map(|(dx, dy, hw, hh)| (x + 1 + dx, y + 1 + dy, hw, hh))
                    .filter(|&(hx, hy, hw, hh)| hx + hw < x + w && hy + hh < y + h)
            };
            let areas: Vec<MultiPolygon> = rects
                .iter()
                .map(|r| {
                    let outer = rectangle(r.0, r.1, r.2, r.3, r.4);
                    match hole_of(r) {
                        None => outer,
                        Some((hx, hy, hw, hh)) => {
                            let exterior = outer.polygons()[0].exterior().to_vec();
                            let hole = rectangle(hx, hy, hw, hh, !r.4).polygons()[0].exterior().to_vec();
                            let close = |mut ring: Vec<Point>| { ring.push(ring[0]); ring };
                            Polygon::new(close(exterior), vec![close(hole)]).unwrap().into()
                        }
                    }
                })
                .collect();
            let inside = |i: usize, cx: f64, cy: f64| {
                let r = &rects[i];
                let within = |x: u8, y: u8, w: u8, h: u8| {
                    f64::from(x) < cx && cx < f64::from(x + w) && f64::from(y) < cy && cy < f64::from(y + h)
                };
                within(r.0, r.1, r.2, r.3)
                    && !hole_of(r).is_some_and(|(hx, hy, hw, hh)| within(hx, hy, hw, hh))
            };
            let meets = |i: usize, j: usize| {
                (0..12).any(|x| (0..12).any(|y| {
                    let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                    inside(i, cx, cy) && inside(j, cx, cy)
                }))
            };
            let overlapping: Vec<(usize, usize)> = (0..rects.len())
                .flat_map(|i| (i + 1..rects.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| meets(i, j))
                .collect();
            match check(&areas) {
                Ok(()) => proptest::prop_assert!(overlapping.is_empty(), "{overlapping:?} not found"),
                Err(Defect::Overlap { parts, .. }) => proptest::prop_assert!(
                    overlapping.contains(&(parts.0.area, parts.1.area)),
                    "{parts:?} reported, overlapping: {overlapping:?}"
                ),
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }

        /// Right triangles and squares on an integer lattice: shared diagonals, diagonals
        /// along part of a longer one, vertices on diagonals.
        #[test]
        fn triangles_overlap_exactly_when_their_interiors_meet(
            shapes in proptest::collection::vec((0u8..5, 0u8..5, 1u8..4, 0u8..5, proptest::bool::ANY), 2..6)
        ) {
            // Corners of a square of side k at (x, y), and which of them make the shape:
            // kind 0..4 drops corner `kind` (a triangle), kind 4 keeps all (the square).
            let corners = |&(x, y, k, kind, cw): &(u8, u8, u8, u8, bool)| {
                let (x0, y0, x1, y1) = (f64::from(x), f64::from(y), f64::from(x + k), f64::from(y + k));
                let mut c: Vec<(f64, f64)> = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
                    .into_iter()
                    .enumerate()
                    .filter(|&(i, _)| i != usize::from(kind))
                    .map(|(_, p)| p)
                    .collect();
                if cw {
                    c.reverse();
                }
                c
            };
            let areas: Vec<MultiPolygon> = shapes.iter().map(|s| shape(&corners(s), &[])).collect();
            // Inside a convex polygon given counter-clockwise or clockwise, strictly.
            let inside = |i: usize, px: f64, py: f64| {
                let c = corners(&shapes[i]);
                let sides: Vec<f64> = (0..c.len())
                    .map(|k| {
                        let (a, b) = (c[k], c[(k + 1) % c.len()]);
                        (b.0 - a.0) * (py - a.1) - (b.1 - a.1) * (px - a.0)
                    })
                    .collect();
                sides.iter().all(|&v| v > 0.0) || sides.iter().all(|&v| v < 0.0)
            };
            let samples: Vec<(f64, f64)> = (0..10)
                .flat_map(|i| (0..10).map(move |j| (f64::from(i), f64::from(j))))
                .flat_map(|(i, j)| {
                    [(0.5, 1.0 / 6.0), (5.0 / 6.0, 0.5), (0.5, 5.0 / 6.0), (1.0 / 6.0, 0.5)]
                        .map(|(dx, dy)| (i + dx, j + dy))
                })
                .collect();
            let overlapping: Vec<(usize, usize)> = (0..shapes.len())
                .flat_map(|i| (i + 1..shapes.len()).map(move |j| (i, j)))
                .filter(|&(i, j)| samples.iter().any(|&(x, y)| inside(i, x, y) && inside(j, x, y)))
                .collect();
            match check(&areas) {
                Ok(()) => proptest::prop_assert!(overlapping.is_empty(), "{overlapping:?} not found"),
                Err(Defect::Overlap { parts, .. }) => proptest::prop_assert!(
                    overlapping.contains(&(parts.0.area, parts.1.area)),
                    "{parts:?} reported, overlapping: {overlapping:?}"
                ),
                Err(other) => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }
}
