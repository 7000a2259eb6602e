//! The positioning core on real and simulated data: the shared BLE dataset (tracker against the
//! kNN baseline), a scripted walk through the demo hospital with simulated gateways, the space's
//! structure, and bad readings.

use super::eval::{evaluate, Reference};
use super::filter::{Reading, Scan, Track, Tracker};
use super::{io, sim};
use super::radio::{AnchorDef, RadioMap, RadioMapFile, Sample, VenueRef};
use crate::map::{self, model::NodeKind, VenueMap};
use std::sync::{Arc, OnceLock};

fn dataset(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ble-calib2021").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn flat(samples: Vec<Sample>, anchors: Vec<AnchorDef>) -> Arc<RadioMap> {
    let outline = io::read_outline(&dataset("layout.csv")).unwrap();
    let (_, built) = super::calibrate(anchors, samples, VenueRef::Outline { id: "flat".into(), outline }, None, None).unwrap();
    Arc::new(built)
}

#[test]
fn on_the_recorded_walk_the_tracker_beats_plain_knn_by_a_quarter() {
    let anchors = io::read_anchors(&dataset("anchors.csv")).unwrap();
    let samples = io::read_samples(&dataset("calibration/calibration_df.csv"), &anchors).unwrap();
    assert_eq!(samples.len(), 4104);
    let walk = io::read_walk(&dataset("tests/test_walk_df.csv"), &anchors).unwrap();
    let path = io::read_path(&dataset("tests/path_reference.csv")).unwrap();
    let report = evaluate(flat(samples, anchors), &walk, Reference::Path(&path));
    let base = report.baseline.unwrap();
    assert_eq!((report.tracker.n, base.n), (876, 876));
    // The dataset's README puts plain kNN at about a metre on held-out points; cross-track is
    // kinder (along-track error does not count).
    assert!(base.median_m > 0.3 && base.median_m < 0.6, "baseline {base:?}");
    assert!(report.tracker.median_m <= 0.75 * base.median_m, "tracker {:?} baseline {base:?}", report.tracker);
    assert!(report.tracker.p90_m < base.p90_m, "tracker {:?} baseline {base:?}", report.tracker);
}

#[test]
fn on_held_out_robot_positions_the_tracker_beats_plain_knn() {
    // The robot's last fifth, never seen by the radio map, scored against its recorded position.
    let anchors = io::read_anchors(&dataset("anchors.csv")).unwrap();
    let text = dataset("calibration/calibration_df.csv");
    let samples = io::read_samples(&text, &anchors).unwrap();
    let rows = io::read_walk(&text, &anchors).unwrap();
    let cut = samples.len() * 4 / 5;
    let report = evaluate(flat(samples[..cut].to_vec(), anchors), &rows[cut..], Reference::Truth);
    let base = report.baseline.unwrap();
    assert!(report.tracker.n > 800);
    assert!(report.tracker.median_m < base.median_m, "tracker {:?} baseline {base:?}", report.tracker);
}

fn demo() -> &'static VenueMap {
    static MAP: OnceLock<VenueMap> = OnceLock::new();
    MAP.get_or_init(map::demo)
}

fn hospital() -> Arc<RadioMap> {
    static RADIO: OnceLock<Arc<RadioMap>> = OnceLock::new();
    RADIO
        .get_or_init(|| {
            let m = demo();
            let (_, built) = super::calibrate(sim::gateways(m, 8.0), Vec::new(), VenueRef::Map { id: m.id.clone() }, None, Some(m)).unwrap();
            Arc::new(built)
        })
        .clone()
}

/// The scripted walks: three routes (one across buildings and up three floors by lift, one up
/// from the entrance, one from a consulting room on foot), four noise seeds each. Returns every
/// second's error (infinite on the wrong floor) and checks the floor changes on the way.
fn scripted_walks(radio: &Arc<RadioMap>) -> Vec<f64> {
    let m = demo();
    // Floors are ordinals: a skybridge joins two buildings' levels of the same floor.
    let floor = |l: usize| m.levels[l].ordinal;
    let mut errors = Vec::new();
    for (from, to) in [("marker:K-A-entrance", "room:us-1"), ("marker:K-A-entrance", "room:c-301"), ("room:c-101", "room:us-1")] {
        let path = sim::walk_route(m, from, to).unwrap();
        for seed in 1..=4 {
            let mut tracker = Tracker::new(radio.clone());
            tracker.all_anchors_working();
            let mut track = Track::default();
            // Starting at a kiosk, the patient's scan there is the first fix (as the app does);
            // from a room, the tracker starts cold, from the radio alone.
            if let Some(marker) = from.strip_prefix("marker:").and_then(|id| m.marker(id)) {
                let n = &m.graph[marker.node];
                tracker.fix(&mut track, n.level as u16, n.x, n.y, -1000);
            }
            let mut seen: Vec<(usize, i32)> = Vec::new();
            for (sec, scans) in sim::gateway_scans(radio, m, &path, seed).into_iter().enumerate() {
                for s in &scans {
                    tracker.update(&mut track, s);
                }
                let Some(e) = track.estimate() else { continue };
                let (lt, xt, yt) = path[sec];
                errors.push(if floor(e.level as usize) == floor(lt) { (e.x - xt).hypot(e.y - yt) } else { f64::INFINITY });
                seen.push((sec, floor(e.level as usize)));
            }
            // Every floor change of the estimate follows a real one (same floors, within 20 s)
            // and there are no others: no flapping between floors on radio noise alone.
            let truth: Vec<(usize, i32, i32)> = path.windows(2).enumerate().map(|(i, w)| (i + 1, floor(w[0].0), floor(w[1].0))).filter(|c| c.1 != c.2).collect();
            let changes: Vec<(usize, i32, i32)> = seen.windows(2).filter(|w| w[0].1 != w[1].1).map(|w| (w[1].0, w[0].1, w[1].1)).collect();
            assert_eq!(changes.len(), truth.len(), "{from} → {to} seed {seed}: floor changes {changes:?}, truth {truth:?}");
            for (c, t) in changes.iter().zip(&truth) {
                assert_eq!((c.1, c.2), (t.1, t.2), "{from} → {to} seed {seed}");
                assert!(c.0 >= t.0 && c.0 <= t.0 + 20, "{from} → {to} seed {seed}: seen {c:?} for {t:?}");
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    errors
}

#[test]
fn a_scripted_walk_through_the_hospital_keeps_the_floor_and_follows_the_patient() {
    let errors = scripted_walks(&hospital());
    let q = |p: f64| errors[((errors.len() - 1) as f64 * p).round() as usize];
    eprintln!("scripted walks: {} estimates, median {:.2} m, p90 {:.2} m", errors.len(), q(0.5), q(0.9));
    assert!(errors.len() > 800);
    // Issue 10's bar: within 3 m at p90 (2.89 m pooled over these twelve walks; seeds 5–12,
    // which no constant was chosen on, 2.80 m). Seeded, so the figures are exact, not noisy.
    assert!(q(0.5) <= 1.5 && q(0.9) <= 3.0, "median {:.2} m, p90 {:.2} m", q(0.5), q(0.9));
}

#[test]
fn the_venue_space_changes_floor_only_at_lifts_and_stairs_and_every_row_is_a_distribution() {
    let m = demo();
    let radio = hospital();
    let space = &radio.space;
    let vertical: std::collections::HashSet<(u16, i64, i64)> = m
        .graph
        .node_indices()
        .map(|n| &m.graph[n])
        .filter(|n| matches!(n.kind, NodeKind::Elevator | NodeKind::Stairs | NodeKind::Escalator))
        .map(|n| (n.level as u16, (n.x * 100.0).round() as i64, (n.y * 100.0).round() as i64))
        .collect();
    let key = |s: &super::space::State| (s.level, (s.x * 100.0).round() as i64, (s.y * 100.0).round() as i64);
    let mut floor_moves = 0;
    for i in 0..space.len() as u32 {
        let row = space.moves(i);
        let total: f32 = row.iter().map(|m| m.1).sum();
        assert!((total - 1.0).abs() < 1e-4, "state {i}: row sums to {total}");
        let a = space.states[i as usize];
        for &(j, _) in row {
            let b = space.states[j as usize];
            if m.levels[a.level as usize].ordinal != m.levels[b.level as usize].ordinal {
                floor_moves += 1;
                assert!(vertical.contains(&key(&a)) && vertical.contains(&key(&b)), "{a:?} → {b:?} is not a lift or stairs");
            }
            // A step goes no farther than the walk allows (straight line ≤ along the graph).
            assert!(!vertical.contains(&key(&a)) || (a.x - b.x).hypot(a.y - b.y) <= space.params.reach_m + 1e-6);
        }
    }
    assert!(floor_moves > 0);
}

#[test]
fn a_fixed_point_snaps_the_tag_and_tracking_carries_on_from_there() {
    let m = demo();
    let radio = hospital();
    let mut tracker = Tracker::new(radio.clone());
    let mut track = Track::default();
    let kiosk = m.marker("K-A-entrance").unwrap();
    let node = &m.graph[kiosk.node];
    let e = tracker.fix(&mut track, node.level as u16, node.x, node.y, 0).unwrap();
    assert!(e.exact && e.spread_m == 0.0);
    // Standing there, heard by the gateways as a tag there would be.
    let path = vec![(node.level, node.x, node.y); 10];
    for (sec, scans) in sim::gateway_scans(&radio, m, &path, 9).into_iter().enumerate().skip(1) {
        for s in &scans {
            tracker.update(&mut track, s);
        }
        let e = track.estimate().unwrap();
        assert!(!e.exact && e.level as usize == node.level, "second {sec}: {e:?}");
        assert!((e.x - node.x).hypot(e.y - node.y) < 3.0, "second {sec}: {e:?}");
    }
}

#[test]
fn impossible_readings_unknown_anchors_and_stale_scans_are_counted_and_move_nothing() {
    let radio = hospital();
    let mut tracker = Tracker::new(radio.clone());
    let mut track = Track::default();
    let bad = Scan {
        t_ms: 1000,
        readings: vec![
            Reading { anchor: 0, rssi: 12.0 },
            Reading { anchor: 0, rssi: -300.0 },
            Reading { anchor: 0, rssi: f32::NAN },
            Reading { anchor: radio.anchors() as u16, rssi: -60.0 },
        ],
    };
    let u = tracker.update(&mut track, &bad);
    assert_eq!((u.rejected, u.estimate), (4, None));
    let good = Scan { t_ms: 2000, readings: vec![Reading { anchor: 0, rssi: -55.0 }, Reading { anchor: 1, rssi: -80.0 }] };
    let first = tracker.update(&mut track, &good).estimate.expect("a real reading places the tag");
    // A scan from long before what the tag already used (a skewed clock) is refused whole.
    let stale = Scan { t_ms: -60_000, readings: vec![Reading { anchor: 1, rssi: -40.0 }] };
    let u = tracker.update(&mut track, &stale);
    assert_eq!((u.rejected, u.estimate), (1, Some(first)));
}

#[test]
fn a_radio_map_file_round_trips_and_bad_ones_name_the_problem() {
    let m = demo();
    let radio = hospital();
    let text = serde_json::to_string(&radio.file).unwrap();
    let back: RadioMapFile = serde_json::from_str(&text).unwrap();
    assert_eq!(RadioMap::build(back.clone(), Some(m)).unwrap().space.len(), radio.space.len());
    let mut wrong = back.clone();
    wrong.anchors[0].level = "Z-L9".into();
    assert!(matches!(RadioMap::build(wrong, Some(m)), Err(super::RadioError::UnknownLevel { .. })));
    let mut twice = back.clone();
    twice.anchors.push(twice.anchors[0].clone());
    assert!(matches!(RadioMap::build(twice, Some(m)), Err(super::RadioError::DuplicateAnchor(_))));
    let mut other = back.clone();
    other.venue = VenueRef::Map { id: "elsewhere".into() };
    assert!(matches!(RadioMap::build(other, Some(m)), Err(super::RadioError::UnknownVenue(_))));
    let mut slow = back;
    slow.params.step_ms = 100; // 0.15 m a step cannot reach the next state 1 m away
    assert!(matches!(RadioMap::build(slow, Some(m)), Err(super::RadioError::Invalid(_))));
    let huge = VenueRef::Outline { id: "mm".into(), outline: vec![[0.0, 0.0], [90_000.0, 0.0], [90_000.0, 70_000.0]] };
    let anchor = vec![AnchorDef { id: "a".into(), level: String::new(), x: 1.0, y: 1.0, z: 2.0 }];
    assert!(matches!(super::calibrate(anchor, Vec::new(), huge, None, None), Err(super::RadioError::Invalid(m)) if m.contains("is it in metres")));
    assert!(io::read_anchors("id,x\n1,2\n").unwrap_err().message.contains("column y"));
    assert_eq!(io::read_anchors("id,x,y\n1,2,north\n").unwrap_err().line, 2);
}


mod live {
    use super::super::live::{BindError, Dropped, LiveRules, Positioning};
    use super::super::sim;
    use super::{demo, hospital};

    const NOW: i64 = 1_795_482_000_000;

    /// The walk from the entrance kiosk to ultrasound as gateway MQTT payloads: (gateway, JSON).
    fn payloads(tag: &str, seed: u64) -> Vec<Vec<(String, String)>> {
        let m = demo();
        let radio = hospital();
        let path = sim::walk_route(m, "marker:K-A-entrance", "room:us-1").unwrap();
        // With a field the receivers add that the server ignores.
        sim::gateway_reports(&radio, m, &path, seed, tag, NOW)
            .into_iter()
            .map(|second| second.into_iter().map(|(gw, mut v)| (gw, { v["distance"] = 3.2.into(); v.to_string() })).collect())
            .collect()
    }

    #[test]
    fn a_bound_tag_is_followed_through_gateway_reports_and_forgotten_when_the_visit_ends() {
        let mut live = Positioning::new(hospital(), LiveRules::default());
        let seconds = payloads("tag-7", 3);
        // Before binding: every reading counted as unbound, nobody moves.
        for (gw, p) in &seconds[0] {
            assert!(live.gateway_report(gw, p.as_bytes(), NOW).is_empty());
        }
        assert_eq!(live.dropped(Dropped::UnboundTag), seconds[0].len() as u64);
        live.bind("tag-7", "v-1").unwrap();
        assert_eq!(live.bind("tag-7", "v-2"), Err(BindError::TagInUse { tag: "tag-7".into() }));
        assert_eq!(live.bind("", "v-2"), Err(BindError::BadTag));
        let mut moves = 0;
        for (sec, reports) in seconds.iter().enumerate() {
            for (gw, p) in reports {
                for m in live.gateway_report(gw, p.as_bytes(), NOW + sec as i64 * 1000) {
                    assert_eq!(m.visit, "v-1");
                    moves += 1;
                }
            }
        }
        assert!(moves > 100, "{moves} moves");
        let last = live.location("v-1").unwrap();
        let radio = hospital();
        assert_eq!(radio.space.levels[last.level as usize], "B-L3", "ends up at ultrasound, B 3F: {last:?}");
        assert!(live.trail("v-1").len() > 100);
        assert_eq!(live.end_visit("v-1"), 1);
        assert_eq!((live.location("v-1"), live.trail("v-1").len(), live.bound_tags()), (None, 0, 0));
        // The tag is free: another visit may take it, and it starts from nothing.
        live.bind("tag-7", "v-2").unwrap();
        assert_eq!(live.location("v-2"), None);
    }

    #[test]
    fn garbage_unknown_gateways_impossible_strengths_and_skewed_clocks_are_counted_and_move_nobody() {
        let mut live = Positioning::new(hospital(), LiveRules::default());
        live.bind("tag-1", "v-1").unwrap();
        let gw = hospital().file.anchors[0].id.clone();
        for p in ["not json", "{\"rssi\":-60}", "{\"id\":\"tag-1\",\"rssi\":\"loud\"}", "[1,2]"] {
            assert!(live.gateway_report(&gw, p.as_bytes(), NOW).is_empty(), "{p}");
        }
        assert_eq!(live.dropped(Dropped::Malformed), 4);
        assert!(live.gateway_report("gw-nobody", br#"{"id":"tag-1","rssi":-60}"#, NOW).is_empty());
        assert_eq!(live.dropped(Dropped::UnknownGateway), 1);
        for rssi in ["5", "-250", "1e309"] {
            let p = format!(r#"{{"id":"tag-1","rssi":{rssi}}}"#);
            assert!(live.gateway_report(&gw, p.as_bytes(), NOW).is_empty(), "{p}");
        }
        assert_eq!(live.dropped(Dropped::ImpossibleRssi) + live.dropped(Dropped::Malformed), 3 + 4);
        for ts in [NOW + 60_000, NOW - 120_000] {
            let p = format!(r#"{{"id":"tag-1","rssi":-60,"ts":{ts}}}"#);
            assert!(live.gateway_report(&gw, p.as_bytes(), NOW).is_empty());
        }
        assert_eq!(live.dropped(Dropped::ClockSkew), 2);
        assert_eq!((live.location("v-1"), live.accepted()), (None, 0));
        // A good one, as an array, places the tag; an older one after it is stale.
        let p = format!(r#"[{{"id":"tag-1","rssi":-62,"ts":{NOW}}}]"#);
        assert_eq!(live.gateway_report(&gw, p.as_bytes(), NOW).len(), 1);
        let p = format!(r#"{{"id":"tag-1","rssi":-62,"ts":{}}}"#, NOW - 10_000);
        assert!(live.gateway_report(&gw, p.as_bytes(), NOW).is_empty());
        assert_eq!((live.dropped(Dropped::Stale), live.accepted()), (1, 1));
    }

    #[test]
    fn positions_are_kept_only_for_the_retention_window_and_a_kiosk_scan_is_exact() {
        let rules = LiveRules { retention_ms: 10_000, ..LiveRules::default() };
        let mut live = Positioning::new(hospital(), rules);
        live.bind("phone-1", "v-9").unwrap();
        let m = demo();
        let kiosk = &m.graph[m.marker("K-A-entrance").unwrap().node];
        let fixed = live.fix("v-9", kiosk.level as u16, kiosk.x, kiosk.y, NOW).unwrap();
        assert!(fixed.estimate.exact);
        // The phone then hears two beacons (the radio map's anchors) a second later.
        let radio = hospital();
        let beacons: Vec<(String, f64)> = radio.file.anchors.iter().take(2).map(|a| (a.id.clone(), -70.0)).collect();
        assert!(live.phone_scan("phone-1", &beacons, NOW + 1000, NOW + 1000).is_some());
        assert_eq!(live.trail("v-9").len(), 2);
        live.purge(NOW + 10_500);
        assert_eq!(live.trail("v-9").len(), 1, "the kiosk fix is older than the window");
        live.purge(NOW + 60_000);
        assert!(live.trail("v-9").is_empty());
        assert!(live.location("v-9").is_some(), "the latest position stays while the visit lasts");
    }

    #[test]
    fn a_remap_keeps_bindings_trails_and_counters_and_tracks_again_from_the_next_reading() {
        let mut live = Positioning::new(hospital(), LiveRules::default());
        live.bind("wb-1", "v-1").unwrap();
        let m = demo();
        let kiosk = &m.graph[m.marker("K-A-entrance").unwrap().node];
        live.fix("v-1", kiosk.level as u16, kiosk.x, kiosk.y, NOW).unwrap();
        assert!(live.location("v-1").is_some());
        live.remap(hospital());
        assert_eq!(live.visit_of("wb-1"), Some("v-1"), "bindings stay");
        assert_eq!(live.trail("v-1").len(), 1, "the trail stays");
        assert!(live.location("v-1").is_none(), "the old track's states belonged to the old map");
        assert!(live.fix("v-1", kiosk.level as u16, kiosk.x, kiosk.y, NOW + 1000).is_some(), "tracking goes on");
        assert_eq!(live.trail("v-1").len(), 2);
    }
}
