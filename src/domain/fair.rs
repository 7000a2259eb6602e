//! Fair, explainable priority: which waiting ticket a room calls next.
//!
//! Without rules the line's plain order decides (strict priority by rank, FIFO within). The
//! rules of [`Fairness`] change the pick, in this order, and say why:
//! 1. urgent classes (emergencies) first, whatever the rest says;
//! 2. the cap: a ticket passed over `max_overtakes` times by later arrivals is called next
//!    (the earliest arrival of those at the cap);
//! 3. the interleave: after `interleave` priority calls in a row, a normal patient if one waits;
//! 4. otherwise the best effective rank, where waiting `ageing_secs` moves a ticket up one rank.
//!
//! Pure: the same line, streak and `now` always give the same pick.

use super::config::{ClassRanks, Fairness};
use super::event::{UnixMs, KEY_SCALE};
use super::line::Entry;
use serde::Serialize;

/// Why a ticket was picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// First in the plain order.
    Order,
    /// An urgent class.
    Urgent,
    /// Passed over as often as the cap allows.
    Cap,
    /// A normal patient's turn after the priority ones.
    Interleave,
    /// Moved up a rank (or more) by waiting.
    Aged,
}

/// The rules of one queue at one moment.
#[derive(Clone, Copy)]
pub struct Chooser<'a> {
    pub rules: &'a Fairness,
    pub ranks: &'a ClassRanks,
    pub now: UnixMs,
}

impl<'a> Chooser<'a> {
    /// The rank a ticket competes at now: its class's rank, less one per `ageing_secs` waited,
    /// never better than the best non-urgent rank. Urgent ranks do not age.
    pub fn effective_rank(&self, e: &Entry) -> u8 {
        let rank = e.pos.rank;
        let Some(step) = self.rules.ageing_secs else { return rank };
        if self.ranks.is_urgent(rank) {
            return rank;
        }
        let arrived_ms = e.pos.key / KEY_SCALE;
        let steps = (self.now.saturating_sub(arrived_ms).max(0) / 1000) / i64::from(step.max(1));
        let floor = self.ranks.best_aged().min(rank);
        let aged = i64::from(rank) - steps.min(i64::from(u8::MAX));
        aged.max(i64::from(floor)) as u8
    }

    /// Calling order under ageing: `(effective rank, band, slot start, key, placement)`.
    fn order_key(&self, e: &Entry) -> (u8, u8, i64, i64, u64) {
        let (band, slot) = match e.pos.slot_start {
            Some(s) if s <= self.now => (0, s),
            _ => (1, 0),
        };
        (self.effective_rank(e), band, slot, e.pos.key, e.placement)
    }

    pub fn is_priority(&self, e: &Entry) -> bool {
        self.ranks.is_priority(e.pos.rank)
    }

    pub fn is_urgent(&self, e: &Entry) -> bool {
        self.ranks.is_urgent(e.pos.rank)
    }

    /// The index in `cands` (plain order, every one callable by the room) of the ticket to call,
    /// given `streak` priority calls in a row and `overtakes(i)` for each candidate.
    pub fn pick(&self, cands: &[&Entry], streak: u32, overtakes: impl Fn(usize) -> u32) -> Option<(usize, Why)> {
        if cands.is_empty() {
            return None;
        }
        if !self.rules.active() {
            return Some((0, Why::Order));
        }
        if let Some(i) = cands.iter().position(|e| self.is_urgent(e)) {
            return Some((i, if i == 0 { Why::Order } else { Why::Urgent }));
        }
        if let Some(cap) = self.rules.max_overtakes {
            let capped = (0..cands.len()).filter(|&i| overtakes(i) >= cap).min_by_key(|&i| cands[i].arrival());
            if let Some(i) = capped {
                return Some((i, Why::Cap));
            }
        }
        let best = (0..cands.len()).min_by_key(|&i| self.order_key(cands[i]))?;
        if let Some(n) = self.rules.interleave {
            if streak >= n && self.is_priority(cands[best]) {
                let normal = (0..cands.len()).filter(|&i| !self.is_priority(cands[i])).min_by_key(|&i| self.order_key(cands[i]));
                if let Some(i) = normal {
                    return Some((i, Why::Interleave));
                }
            }
        }
        let why = if self.effective_rank(cands[best]) < cands[best].pos.rank && best != 0 { Why::Aged } else { Why::Order };
        Some((best, why))
    }

    /// The streak after calling `e`: priority calls count up, a normal call resets, urgent ones
    /// leave it.
    pub fn streak_after(&self, streak: u32, e: &Entry) -> u32 {
        if self.is_urgent(e) {
            streak
        } else if self.is_priority(e) {
            streak.saturating_add(1)
        } else {
            0
        }
    }

    /// The whole line in the order it would be called if rooms that can call anyone kept
    /// calling now: [`Chooser::pick`] repeated, with passed-over counts and the streak carried
    /// along. Lazy: setting up is one pass over the line (plus a sort by arrival when the cap is
    /// on), each pick looks at the rank heads and the started appointments only, and the cap is
    /// a segment tree. A property test checks it against `pick`.
    pub fn project<'e>(self, plain: Vec<&'e Entry>, streak: u32) -> Box<dyn Iterator<Item = &'e Entry> + 'e>
    where
        'a: 'e,
    {
        if !self.rules.active() || plain.len() < 2 {
            return Box::new(plain.into_iter());
        }
        Box::new(Projection::new(self, plain, streak))
    }
}

/// The not-yet-picked entries of one non-urgent rank, as positions in the plain order.
struct Lane {
    rank: u8,
    /// Walk-ins and appointments not yet started, by key: the effective rank only gets better
    /// towards the front, so the first one left is the lane's best.
    walk: Vec<usize>,
    cursor: usize,
    /// Appointments whose slot has started (few): each is looked at.
    started: Vec<usize>,
}

/// The calling order under the fairness rules, one pick at a time.
struct Projection<'a, 'e> {
    chooser: Chooser<'a>,
    entries: Vec<&'e Entry>,
    picked_already: Vec<bool>,
    lanes: Vec<Lane>,
    /// Urgent entries in plain order, and how many of them are gone.
    urgent: Vec<usize>,
    urgent_cursor: usize,
    /// For the cap: arrival position of each entry, the entry at each arrival position, and per
    /// arrival position `overtakes - picked earlier arrivals` (see `take`). Empty without a cap.
    arrival_rank: Vec<usize>,
    by_arrival: Vec<usize>,
    cap: Option<CapTree>,
    /// Non-urgent picks so far.
    picked: i64,
    streak: u32,
}

impl<'a, 'e> Projection<'a, 'e> {
    fn new(chooser: Chooser<'a>, entries: Vec<&'e Entry>, streak: u32) -> Self {
        let n = entries.len();
        let mut lanes: Vec<Lane> = Vec::new();
        let mut urgent = Vec::new();
        // The plain order is by rank, then the started appointments, then the rest by key.
        for (i, e) in entries.iter().enumerate() {
            if chooser.is_urgent(e) {
                urgent.push(i);
                continue;
            }
            if lanes.last().map(|l| l.rank) != Some(e.pos.rank) {
                lanes.push(Lane { rank: e.pos.rank, walk: Vec::new(), cursor: 0, started: Vec::new() });
            }
            let lane = lanes.last_mut().expect("pushed above");
            match e.pos.slot_start {
                Some(s) if s <= chooser.now => lane.started.push(i),
                _ => lane.walk.push(i),
            }
        }
        let (mut arrival_rank, mut by_arrival, mut cap) = (Vec::new(), Vec::new(), None);
        if chooser.rules.max_overtakes.is_some() {
            by_arrival = arrival_order(&entries, &lanes, &urgent);
            arrival_rank = vec![0; n];
            for (r, &i) in by_arrival.iter().enumerate() {
                arrival_rank[i] = r;
            }
            let mut values: Vec<i32> = by_arrival.iter().map(|&i| i32::try_from(entries[i].overtakes).unwrap_or(i32::MAX / 4)).collect();
            for &u in &urgent {
                values[arrival_rank[u]] = CapTree::GONE;
            }
            cap = Some(CapTree::new(&values));
        }
        Projection { chooser, entries, picked_already: vec![false; n], lanes, urgent, urgent_cursor: 0, arrival_rank, by_arrival, cap, picked: 0, streak }
    }

    /// The best entry left by `(effective rank, band, slot, key, placement)` among ranks that
    /// pass `rank_ok`.
    fn best(&mut self, rank_ok: impl Fn(u8) -> bool) -> Option<usize> {
        let mut best: Option<(usize, (u8, u8, i64, i64, u64))> = None;
        for lane in self.lanes.iter_mut().filter(|l| rank_ok(l.rank)) {
            while lane.cursor < lane.walk.len() && self.picked_already[lane.walk[lane.cursor]] {
                lane.cursor += 1;
            }
            let head = lane.walk.get(lane.cursor).copied();
            for i in head.into_iter().chain(lane.started.iter().copied().filter(|&i| !self.picked_already[i])) {
                let k = self.chooser.order_key(self.entries[i]);
                if best.as_ref().is_none_or(|(_, b)| k < *b) {
                    best = Some((i, k));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Pick entry `i` (not urgent).
    fn take(&mut self, i: usize) {
        self.picked_already[i] = true;
        self.picked += 1;
        // A later arrival is picked: everyone who arrived before it is passed over once more.
        // Kept as `value = overtakes - picked earlier arrivals`, so "at the cap" is
        // `value >= cap - picked`, and one pick changes only the values after it.
        if let Some(tree) = self.cap.as_mut() {
            tree.pick(self.arrival_rank[i]);
        }
    }
}

/// The entries (indexes into the plain order) by arrival, without sorting the line: each lane's
/// walk-ins are in arrival order already (the line is kept by rank, then key), so they are
/// merged; only the few urgent entries and started appointments are sorted first.
fn arrival_order(entries: &[&Entry], lanes: &[Lane], urgent: &[usize]) -> Vec<usize> {
    let mut others: Vec<usize> = urgent.iter().chain(lanes.iter().flat_map(|l| l.started.iter())).copied().collect();
    others.sort_unstable_by_key(|&i| entries[i].arrival());
    let mut runs: Vec<&[usize]> = lanes.iter().map(|l| l.walk.as_slice()).filter(|r| !r.is_empty()).collect();
    if !others.is_empty() {
        runs.push(&others);
    }
    let mut out = Vec::with_capacity(entries.len());
    let mut at = vec![0usize; runs.len()];
    loop {
        let mut best: Option<(usize, (i64, u64))> = None;
        for (r, run) in runs.iter().enumerate() {
            if let Some(&i) = run.get(at[r]) {
                let a = entries[i].arrival();
                if best.is_none_or(|(_, b)| a < b) {
                    best = Some((r, a));
                }
            }
        }
        let Some((r, _)) = best else { break };
        out.push(runs[r][at[r]]);
        at[r] += 1;
    }
    out
}

impl<'e> Iterator for Projection<'_, 'e> {
    type Item = &'e Entry;

    fn next(&mut self) -> Option<&'e Entry> {
        if let Some(&i) = self.urgent.get(self.urgent_cursor) {
            self.urgent_cursor += 1;
            self.picked_already[i] = true;
            return Some(self.entries[i]);
        }
        let rules = self.chooser.rules;
        let ranks = self.chooser.ranks;
        let picked = self.picked;
        let capped = match (rules.max_overtakes, self.cap.as_mut()) {
            (Some(cap), Some(tree)) => tree.leftmost_at_least(i64::from(cap) - picked),
            _ => None,
        };
        let pick = match capped {
            Some(r) => self.by_arrival[r],
            None => {
                let best = self.best(|_| true)?;
                match rules.interleave {
                    Some(n) if self.streak >= n && self.chooser.is_priority(self.entries[best]) => {
                        self.best(|r| !ranks.is_priority(r) && !ranks.is_urgent(r)).unwrap_or(best)
                    }
                    _ => best,
                }
            }
        };
        let e = self.entries[pick];
        self.streak = self.chooser.streak_after(self.streak, e);
        self.take(pick);
        Some(e)
    }
}

/// The cap's segment tree over arrival positions: each position has a value (its overtakes;
/// `GONE` once picked, or for an urgent entry) and a picked flag. What is asked is the leftmost
/// position whose value less the picks before it is at least `t`. Each node keeps the picks
/// under it and its best "value less the picks before it within the node", so a pick is one
/// walk up and a search one walk down, both without recursion.
struct CapTree {
    /// Leaves at `size..2 * size`.
    size: usize,
    best: Vec<i32>,
    picked: Vec<u32>,
}

impl CapTree {
    /// A removed position: never at the cap.
    const GONE: i32 = i32::MIN / 4;

    fn new(values: &[i32]) -> Self {
        let size = values.len().max(1).next_power_of_two();
        let mut best = vec![Self::GONE; 2 * size];
        best[size..size + values.len()].copy_from_slice(values);
        let mut t = CapTree { size, best, picked: vec![0; 2 * size] };
        for node in (1..size).rev() {
            t.pull(node);
        }
        t
    }

    fn pull(&mut self, node: usize) {
        let (l, r) = (2 * node, 2 * node + 1);
        self.best[node] = self.best[l].max(self.best[r].saturating_sub(self.picked[l] as i32));
        self.picked[node] = self.picked[l] + self.picked[r];
    }

    /// Position `at` is picked: gone, and one more pick before everything after it.
    fn pick(&mut self, at: usize) {
        let mut node = self.size + at;
        if node >= self.best.len() {
            return;
        }
        self.best[node] = Self::GONE;
        self.picked[node] = 1;
        while node > 1 {
            node /= 2;
            self.pull(node);
        }
    }

    /// The leftmost position whose value less the picks before it is at least `t`.
    fn leftmost_at_least(&self, t: i64) -> Option<usize> {
        let t = t.clamp(i64::from(i32::MIN / 2), i64::from(i32::MAX / 2)) as i32;
        if self.best[1] < t {
            return None;
        }
        let (mut node, mut before) = (1usize, 0i32);
        while node < self.size {
            let l = 2 * node;
            if self.best[l] - before >= t {
                node = l;
            } else {
                before += self.picked[l] as i32;
                node = l + 1;
            }
        }
        Some(node - self.size)
    }
}

#[cfg(test)]
mod cap_tree_tests {
    use super::CapTree;
    use proptest::prelude::*;

    proptest! {
        /// The tree answers as a plain scan of `value - picks before it` does, pick after pick.
        #[test]
        fn the_tree_answers_as_a_scan(values in proptest::collection::vec(0i32..8, 1..200), picks in proptest::collection::vec(0usize..200, 0..60), t in -4i64..10) {
            let mut tree = CapTree::new(&values);
            let mut gone = vec![false; values.len()];
            for p in picks.into_iter().map(|p| p % values.len()) {
                tree.pick(p);
                gone[p] = true;
                let scan = (0..values.len()).find(|&i| !gone[i] && i64::from(values[i]) - gone[..i].iter().filter(|g| **g).count() as i64 >= t);
                prop_assert_eq!(tree.leftmost_at_least(t), scan);
            }
        }
    }
}
