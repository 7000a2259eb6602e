//! The waiting line of one queue, kept in its plain order.
//!
//! Plain order is `(rank, band, slot start, key, placement)` where `band` is 0 for an
//! appointment whose slot has started and 1 otherwise (see [`Pos`]). Only `band` depends on the
//! time, so the line keeps two sorted indexes and merges them at `now`: every waiting ticket by
//! `(rank, key, placement)`, and the ones with a slot by `(rank, slot start, key, placement)`.
//! Finding the next patient is a walk from the front, not a scan or a sort of the whole line.
//! The fairness rules ([`super::fair`]) may call someone else than the front; they start from
//! this order.

use super::event::{Pos, UnixMs};
use super::ids::{DoctorId, TicketId};
use std::collections::BTreeMap;

/// A waiting ticket as the line knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: TicketId,
    pub doctor: Option<DoctorId>,
    pub pos: Pos,
    /// Unique per placement in this queue: identifies the entry without comparing ids.
    pub placement: u64,
    /// Later arrivals called before this ticket by a room that could have called it (counted
    /// while the queue has an overtake cap).
    pub overtakes: u32,
}

impl Entry {
    pub fn pooled(&self) -> bool {
        self.doctor.is_none()
    }

    /// Order of arrival in this line: the place key (check-in time, or the slot an insertion
    /// took), then the placement.
    pub fn arrival(&self) -> (i64, u64) {
        (self.pos.key, self.placement)
    }

    /// May a room with `doctor` call this ticket?
    pub fn callable_by(&self, doctor: Option<&DoctorId>) -> bool {
        self.doctor.is_none() || self.doctor.as_ref() == doctor
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Line {
    walk: BTreeMap<(u8, i64, u64), Entry>,
    /// Index of the entries with a slot: `(rank, slot start, key, placement)`.
    slotted: BTreeMap<(u8, i64, i64, u64), ()>,
    /// At least the most any waiting entry has been passed over (exact after each
    /// `passed_over_by`, an upper bound after removals): when it is below what the overtake cap
    /// needs, the head of the calling order can be projected from the front of the line alone.
    most_overtakes: u32,
    /// Entries per rank, pooled and per doctor: the place of the last arrival of a rank in the
    /// plain order is counted from them, without walking the line.
    counts: BTreeMap<u8, RankCount>,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct RankCount {
    pooled: usize,
    by_doctor: BTreeMap<DoctorId, usize>,
}

impl RankCount {
    fn add(&mut self, doctor: Option<&DoctorId>, d: isize) {
        let n = match doctor {
            None => &mut self.pooled,
            Some(doc) => self.by_doctor.entry(doc.clone()).or_default(),
        };
        *n = n.saturating_add_signed(d);
        if let Some(doc) = doctor {
            if self.by_doctor.get(doc) == Some(&0) {
                self.by_doctor.remove(doc);
            }
        }
    }

    /// Entries a ticket with `doctor` waits behind: everyone for a pooled ticket; the pooled and
    /// its doctor's for a doctor-bound one.
    fn ahead_of(&self, doctor: Option<&DoctorId>) -> usize {
        match doctor {
            None => self.pooled + self.by_doctor.values().sum::<usize>(),
            Some(d) => self.pooled + self.by_doctor.get(d).copied().unwrap_or(0),
        }
    }

    fn is_empty(&self) -> bool {
        self.pooled == 0 && self.by_doctor.is_empty()
    }
}

impl Line {
    pub fn len(&self) -> usize {
        self.walk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.walk.is_empty()
    }

    pub fn insert(&mut self, entry: Entry) {
        let pos = entry.pos;
        if let Some(s) = pos.slot_start {
            self.slotted.insert((pos.rank, s, pos.key, entry.placement), ());
        }
        let counts = self.counts.entry(pos.rank).or_default();
        counts.add(entry.doctor.as_ref(), 1);
        if let Some(old) = self.walk.insert((pos.rank, pos.key, entry.placement), entry) {
            self.counts.entry(pos.rank).or_default().add(old.doctor.as_ref(), -1);
        }
    }

    pub fn remove(&mut self, pos: Pos, placement: u64) -> Option<Entry> {
        if let Some(s) = pos.slot_start {
            self.slotted.remove(&(pos.rank, s, pos.key, placement));
        }
        let gone = self.walk.remove(&(pos.rank, pos.key, placement))?;
        if let Some(c) = self.counts.get_mut(&pos.rank) {
            c.add(gone.doctor.as_ref(), -1);
            if c.is_empty() {
                self.counts.remove(&pos.rank);
            }
        }
        Some(gone)
    }

    /// The place in plain order of the entry at `pos`, counted rather than walked, when it is
    /// the last of its rank and not an appointment whose slot has started (a walk-in just
    /// issued, typically): everyone of a better rank and of its own is ahead of it, nobody of a
    /// worse one. `(ahead, of those of a rank better than `normal`)`; `None` otherwise.
    pub fn counted_place(&self, pos: Pos, placement: u64, doctor: Option<&DoctorId>, normal: u8, now: UnixMs) -> Option<(usize, usize)> {
        if pos.slot_start.is_some_and(|s| s <= now) {
            return None;
        }
        let (last, _) = self.walk.range((pos.rank, i64::MIN, 0)..=(pos.rank, i64::MAX, u64::MAX)).next_back()?;
        if *last != (pos.rank, pos.key, placement) {
            return None;
        }
        let (mut ahead, mut priority) = (0usize, 0usize);
        for (rank, c) in self.counts.range(..=pos.rank) {
            let n = c.ahead_of(doctor);
            ahead += n;
            if *rank < normal {
                priority += n;
            }
        }
        // Not itself.
        Some((ahead.saturating_sub(1), if pos.rank < normal { priority.saturating_sub(1) } else { priority }))
    }

    pub fn get(&self, pos: Pos, placement: u64) -> Option<&Entry> {
        self.walk.get(&(pos.rank, pos.key, placement))
    }

    /// `called` was called by a room with `doctor`: every ticket that arrived before it and that
    /// room could have called has been passed over once more.
    pub fn passed_over_by(&mut self, called: (i64, u64), doctor: Option<&DoctorId>) {
        let mut most = 0;
        for e in self.walk.values_mut() {
            if e.arrival() < called && e.callable_by(doctor) {
                e.overtakes = e.overtakes.saturating_add(1);
            }
            most = most.max(e.overtakes);
        }
        self.most_overtakes = most;
    }

    /// What the first `k` picks of the calling order (of the entries `keep` keeps) can come
    /// from, in plain order: per rank, the appointments whose slot has started and the first `k`
    /// others; and, when some entry may reach `cap_from` overtakes, every entry that has (the
    /// cap can call it however far back it waits). Everyone else is behind at least `k` entries
    /// that are not.
    pub fn front(&self, now: UnixMs, k: usize, cap_from: Option<u32>, keep: impl Fn(&Entry) -> bool) -> Vec<&Entry> {
        let deep = cap_from.filter(|&c| self.most_overtakes >= c);
        let mut out = Vec::new();
        for r in self.ranks() {
            let (started, rest) = self.rank(r, now);
            out.extend(started.filter(|e| keep(e)));
            let rest = rest.filter(|e| keep(e));
            let mut taken = 0usize;
            for e in rest {
                if taken < k {
                    taken += 1;
                    out.push(e);
                } else {
                    match deep {
                        Some(c) if e.overtakes >= c => out.push(e),
                        Some(_) => {}
                        None => break,
                    }
                }
            }
        }
        out
    }

    /// Ranks present, most urgent first.
    fn ranks(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut from: u16 = 0;
        while from <= u16::from(u8::MAX) {
            match self.walk.range((from as u8, i64::MIN, 0)..).next() {
                Some(((r, _, _), _)) => {
                    out.push(*r);
                    from = u16::from(*r) + 1;
                }
                None => break,
            }
        }
        out
    }

    /// The waiting tickets in plain order at `now`.
    pub fn iter(&self, now: UnixMs) -> impl Iterator<Item = &Entry> + '_ {
        self.ranks().into_iter().flat_map(move |r| {
            let (started, rest) = self.rank(r, now);
            started.chain(rest)
        })
    }

    /// One rank's entries in plain order, in two parts: the appointments whose slot has started
    /// at `now` (by slot), then the others (by key).
    fn rank(&self, r: u8, now: UnixMs) -> (impl Iterator<Item = &Entry> + '_, impl Iterator<Item = &Entry> + '_) {
        let started = self
            .slotted
            .range((r, i64::MIN, i64::MIN, 0)..=(r, now, i64::MAX, u64::MAX))
            .filter_map(|((rank, _, key, placement), _)| self.walk.get(&(*rank, *key, *placement)));
        let rest = self.walk.range((r, i64::MIN, 0)..=(r, i64::MAX, u64::MAX)).map(|(_, e)| e).filter(move |e| !e.pos.slot_start.is_some_and(|s| s <= now));
        (started, rest)
    }
}

/// A calling order with the number of patients ahead of each: a pooled ticket waits behind
/// everyone before it; a doctor-bound one behind the pooled ones and those of its doctor.
pub fn with_ahead<'a>(order: impl Iterator<Item = &'a Entry>) -> impl Iterator<Item = (&'a Entry, usize)> {
    let mut pooled = 0usize;
    let mut total = 0usize;
    let mut by_doctor: BTreeMap<&DoctorId, usize> = BTreeMap::new();
    order.map(move |e| {
        let ahead = match &e.doctor {
            None => total,
            Some(d) => pooled + by_doctor.get(d).copied().unwrap_or(0),
        };
        total += 1;
        match &e.doctor {
            None => pooled += 1,
            Some(d) => *by_doctor.entry(d).or_default() += 1,
        }
        (e, ahead)
    })
}

/// The front of a calling order: everyone with fewer than `k` ahead. Pooled tickets seen so far
/// decide when to stop: once `k` pooled tickets are ahead, nobody further back can have fewer.
pub fn within<'a>(order: impl Iterator<Item = &'a Entry>, k: usize) -> impl Iterator<Item = (&'a Entry, usize)> {
    let mut pooled_seen = 0usize;
    with_ahead(order).take_while(move |(e, _)| {
        let go = pooled_seen < k;
        if e.pooled() {
            pooled_seen += 1;
        }
        go
    })
}
