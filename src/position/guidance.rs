//! Live guidance, pure: where a position lies on the route being followed, when the patient has
//! left it, and when it is time to leave for a queue.
//!
//! The route is a polyline per level in the venue's local metres (a lift ride joins two levels);
//! a position is projected onto the stretches of its own level. Leaving the route is decided
//! with hysteresis: the estimate must stay further than [`OFF_ROUTE_M`] (or twice its own
//! spread) from the route for [`OFF_ROUTE_MS`], so one noisy estimate never re-plans anybody.

use crate::map::VenueMap;

/// Further than this from every stretch of the route (on the position's level) is off the route.
pub const OFF_ROUTE_M: f64 = 8.0;
/// How long a position must stay off the route before it counts.
pub const OFF_ROUTE_MS: i64 = 6_000;
/// "Leave now" fires when the walk would take this much less than the time until the call.
pub const LEAVE_MARGIN_S: f64 = 60.0;

/// A route as lines on levels.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteLine {
    pub venue: String,
    /// Points in order; consecutive points on different levels are a lift or stairs ride.
    pub points: Vec<(String, [f64; 2])>,
    pub duration_s: f64,
}

/// Where a position lies against a route.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Distance from the nearest stretch on the position's level (∞ when the route never
    /// touches that level).
    pub off_m: f64,
    /// Metres along the route to that nearest point.
    pub along_m: f64,
    pub remaining_m: f64,
    pub remaining_s: f64,
}

impl RouteLine {
    /// The line of a route given as its node ids (the `path` of a route's JSON), following each
    /// link's drawn geometry. `None` when a node is not on `map`.
    pub fn from_nodes(map: &VenueMap, nodes: &[&str], duration_s: f64) -> Option<RouteLine> {
        let idx: Vec<_> = nodes.iter().map(|n| map.node_ids.get(*n).copied()).collect::<Option<_>>()?;
        let mut points: Vec<(String, [f64; 2])> = Vec::new();
        let level = |n| map.level_of(n).id.clone();
        if let Some(&first) = idx.first() {
            points.push((level(first), [map.node(first).x, map.node(first).y]));
        }
        for w in idx.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (la, lb) = (level(a), level(b));
            if la == lb {
                if let Some(e) = map.graph.find_edge(a, b) {
                    for c in &map.edge(e).coords {
                        let p = map.to_local(c[0], c[1]);
                        if points.last().is_none_or(|(l, q)| *l != la || dist(*q, p) > 0.01) {
                            points.push((la.clone(), p));
                        }
                    }
                }
            }
            let p = [map.node(b).x, map.node(b).y];
            if points.last().is_none_or(|(l, q)| *l != lb || dist(*q, p) > 0.01) {
                points.push((lb, p));
            }
        }
        Some(RouteLine { venue: map.id.clone(), points, duration_s })
    }

    /// The walking length of the route (lift rides count nothing).
    pub fn length_m(&self) -> f64 {
        self.points.windows(2).filter(|w| w[0].0 == w[1].0).map(|w| dist(w[0].1, w[1].1)).sum()
    }

    /// Where `(x, y)` on `level` lies against the route.
    pub fn progress(&self, level: &str, x: f64, y: f64) -> Progress {
        let total = self.length_m();
        let mut best = (f64::INFINITY, 0.0);
        let mut along = 0.0;
        for w in self.points.windows(2) {
            if w[0].0 != w[1].0 {
                continue;
            }
            let len = dist(w[0].1, w[1].1);
            if w[0].0 == level {
                let (d, t) = project([x, y], w[0].1, w[1].1);
                if d < best.0 - 1e-9 {
                    best = (d, along + t * len);
                }
            }
            along += len;
        }
        // A route that is a single point (already there) is near when on its level.
        if best.0.is_infinite() {
            if let Some((_, p)) = self.points.iter().find(|(l, _)| l == level) {
                best = (dist(*p, [x, y]), 0.0);
            }
        }
        let remaining_m = (total - best.1).max(0.0);
        let remaining_s = if total > 0.0 { self.duration_s * remaining_m / total } else { 0.0 };
        Progress { off_m: best.0, along_m: best.1, remaining_m, remaining_s }
    }
}

/// Decides when a patient has left the route: off by more than [`OFF_ROUTE_M`] (or twice the
/// estimate's spread) continuously for [`OFF_ROUTE_MS`].
#[derive(Debug, Clone, Default)]
pub struct Follow {
    off_since: Option<i64>,
}

impl Follow {
    /// Feeds one estimate; `true` once the patient has been off the route long enough (then the
    /// caller re-plans and starts a new `Follow`).
    pub fn update(&mut self, p: &Progress, spread_m: f64, t_ms: i64) -> bool {
        let off = p.off_m > OFF_ROUTE_M.max(2.0 * spread_m);
        if !off {
            self.off_since = None;
            return false;
        }
        let since = *self.off_since.get_or_insert(t_ms);
        t_ms - since >= OFF_ROUTE_MS
    }
}

/// "Leave now" for one waiting ticket: fires once when the walk from where the patient is
/// reaches the expected time until the call (less a margin), and again only after the gap has
/// opened up by two margins (the queue slowed, the patient came closer).
#[derive(Debug, Clone, Default)]
pub struct LeaveNow {
    armed_off: bool,
}

impl LeaveNow {
    pub fn update(&mut self, walk_s: f64, eta_s: f64) -> bool {
        let slack = eta_s - walk_s;
        if self.armed_off {
            if slack > 3.0 * LEAVE_MARGIN_S {
                self.armed_off = false;
            }
            return false;
        }
        if slack <= LEAVE_MARGIN_S {
            self.armed_off = true;
            return true;
        }
        false
    }
}

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

/// Distance from `p` to the segment `a`–`b`, and where along it (0..1) the nearest point is.
fn project(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> (f64, f64) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let l2 = dx * dx + dy * dy;
    let t = if l2 == 0.0 { 0.0 } else { (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2).clamp(0.0, 1.0) };
    (dist(p, [a[0] + t * dx, a[1] + t * dy]), t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> RouteLine {
        // 20 m east on L1, a lift, 10 m north on L2.
        let p = |l: &str, x, y| (l.to_owned(), [x, y]);
        RouteLine { venue: "v".into(), points: vec![p("L1", 0.0, 0.0), p("L1", 20.0, 0.0), p("L2", 20.0, 0.0), p("L2", 20.0, 10.0)], duration_s: 60.0 }
    }

    #[test]
    fn progress_projects_on_the_positions_level() {
        let r = line();
        assert_eq!(r.length_m(), 30.0);
        let p = r.progress("L1", 5.0, 1.0);
        assert!((p.off_m - 1.0).abs() < 1e-9 && (p.along_m - 5.0).abs() < 1e-9 && (p.remaining_m - 25.0).abs() < 1e-9);
        assert!((p.remaining_s - 50.0).abs() < 1e-9);
        let p = r.progress("L2", 21.0, 5.0);
        assert!((p.off_m - 1.0).abs() < 1e-9 && (p.along_m - 25.0).abs() < 1e-9);
        assert!(r.progress("L3", 20.0, 0.0).off_m.is_infinite(), "a level the route never visits is off the route");
    }

    #[test]
    fn leaving_the_route_needs_to_last() {
        let r = line();
        let mut f = Follow::default();
        let far = r.progress("L1", 10.0, 15.0);
        assert!(!f.update(&far, 2.0, 0));
        assert!(!f.update(&far, 2.0, 3_000));
        // Back on the route resets the clock.
        assert!(!f.update(&r.progress("L1", 10.0, 1.0), 2.0, 4_000));
        assert!(!f.update(&far, 2.0, 5_000));
        assert!(f.update(&far, 2.0, 5_000 + OFF_ROUTE_MS));
        // A vague estimate (spread 10 m) 15 m away is not proof of leaving.
        let mut f = Follow::default();
        assert!(!f.update(&far, 10.0, 0) && !f.update(&far, 10.0, 60_000));
    }

    #[test]
    fn leave_now_fires_once_until_the_gap_reopens() {
        let mut l = LeaveNow::default();
        assert!(!l.update(120.0, 600.0));
        assert!(l.update(120.0, 170.0));
        assert!(!l.update(120.0, 150.0), "once");
        assert!(!l.update(100.0, 250.0), "not re-armed by a small change");
        assert!(!l.update(100.0, 400.0), "re-armed: slack 300 s > 3 margins");
        assert!(l.update(100.0, 150.0));
    }
}
