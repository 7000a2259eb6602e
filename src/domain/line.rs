//! The waiting line of one queue, kept in calling order.
//!
//! Calling order is `(rank, band, slot start, key, placement)` where `band` is 0 for an
//! appointment whose slot has started and 1 otherwise (see [`Pos`]). Only `band` depends on the
//! time, so the line keeps two sorted indexes and merges them at `now`: every waiting ticket by
//! `(rank, key, placement)`, and the ones with a slot by `(rank, slot start, key, placement)`.
//! Finding the next patient is a walk from the front, not a scan or a sort of the whole line.

use super::event::{Pos, UnixMs};
use super::ids::{DoctorId, TicketId};
use std::collections::BTreeMap;

/// A waiting ticket as the line knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: TicketId,
    pub doctor: Option<DoctorId>,
    pub slot_start: Option<UnixMs>,
    /// Unique per placement in this queue: identifies the entry without comparing ids.
    pub placement: u64,
}

impl Entry {
    pub fn pooled(&self) -> bool {
        self.doctor.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Line {
    walk: BTreeMap<(u8, i64, u64), Entry>,
    slotted: BTreeMap<(u8, i64, i64, u64), Entry>,
}

impl Line {
    pub fn len(&self) -> usize {
        self.walk.len()
    }

    pub fn is_empty(&self) -> bool {
        self.walk.is_empty()
    }

    pub fn insert(&mut self, pos: Pos, entry: Entry) {
        if let Some(s) = pos.slot_start {
            self.slotted.insert((pos.rank, s, pos.key, entry.placement), entry.clone());
        }
        self.walk.insert((pos.rank, pos.key, entry.placement), entry);
    }

    pub fn remove(&mut self, pos: Pos, placement: u64) {
        if let Some(s) = pos.slot_start {
            self.slotted.remove(&(pos.rank, s, pos.key, placement));
        }
        self.walk.remove(&(pos.rank, pos.key, placement));
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

    /// The waiting tickets in calling order at `now`.
    pub fn iter(&self, now: UnixMs) -> impl Iterator<Item = &Entry> + '_ {
        self.ranks().into_iter().flat_map(move |r| {
            let started = self.slotted.range((r, i64::MIN, i64::MIN, 0)..=(r, now, i64::MAX, u64::MAX)).map(|(_, e)| e);
            let rest = self
                .walk
                .range((r, i64::MIN, 0)..=(r, i64::MAX, u64::MAX))
                .map(|(_, e)| e)
                .filter(move |e| !e.slot_start.is_some_and(|s| s <= now));
            started.chain(rest)
        })
    }

    /// The line at `now` with the number of patients ahead of each: a pooled ticket waits behind
    /// everyone before it; a doctor-bound one behind the pooled ones and those of its doctor.
    pub fn with_ahead(&self, now: UnixMs) -> impl Iterator<Item = (&Entry, usize)> + '_ {
        let mut pooled = 0usize;
        let mut total = 0usize;
        let mut by_doctor: BTreeMap<&DoctorId, usize> = BTreeMap::new();
        self.iter(now).map(move |e| {
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

    /// Pooled tickets seen so far decide when to stop: once `k` pooled tickets are ahead, nobody
    /// further back can have fewer than `k` ahead.
    pub fn within(&self, k: usize, now: UnixMs) -> impl Iterator<Item = (&Entry, usize)> + '_ {
        let mut pooled_seen = 0usize;
        self.with_ahead(now).take_while(move |(e, _)| {
            let go = pooled_seen < k;
            if e.pooled() {
                pooled_seen += 1;
            }
            go
        })
    }
}
