//! The BLE tracker's cost per scan on one core (issue 10's target: at least 20,000 scans/s).
//!
//! Two inputs: gateway reports for simulated walks through the demo hospital (a gateway in every
//! lift lobby and one every 8 m of corridor, 4 dB noise; one report per gateway per second, so
//! most scans are pooled and about one in five steps the filter), and the recorded walk of the
//! shared BLE dataset (six anchors in one scan, every scan a step, on a 0.25 m grid).

use clinicflow::map;
use clinicflow::position::{self, io, radio::VenueRef, sim, Scan, Track, Tracker};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::Arc;

fn run(tracker: &mut Tracker, walks: &[Vec<Scan>]) -> usize {
    let mut n = 0;
    for walk in walks {
        let mut track = Track::default();
        for s in walk {
            n += tracker.update(&mut track, s).rejected as usize;
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let m = map::demo();
    let (_, radio) = position::calibrate(sim::gateways(&m, 8.0), Vec::new(), VenueRef::Map { id: m.id.clone() }, None, Some(&m)).expect("demo radio map");
    let radio = Arc::new(radio);
    let mut walks = Vec::new();
    for (i, (from, to)) in [("marker:K-A-entrance", "room:us-1"), ("marker:K-A-entrance", "room:c-301"), ("room:c-101", "room:us-1")].iter().enumerate() {
        let path = sim::walk_route(&m, from, to).expect("demo route");
        walks.push(sim::gateway_scans(&radio, &m, &path, i as u64 + 1).into_iter().flatten().collect::<Vec<_>>());
    }
    let scans: usize = walks.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("position");
    group.throughput(Throughput::Elements(scans as u64));
    let mut tracker = Tracker::new(radio.clone());
    group.bench_function("hospital_gateway_reports", |b| b.iter(|| run(&mut tracker, &walks)));

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ble-calib2021");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("dataset file");
    let anchors = io::read_anchors(&read("anchors.csv")).expect("anchors");
    let samples = io::read_samples(&read("calibration/calibration_df.csv"), &anchors).expect("samples");
    let walk: Vec<Scan> = io::read_walk(&read("tests/test_walk_df.csv"), &anchors).expect("walk").into_iter().map(|r| r.scan).collect();
    let outline = io::read_outline(&read("layout.csv")).expect("outline");
    let (_, flat) = position::calibrate(anchors, samples, VenueRef::Outline { id: "flat".into(), outline }, None, None).expect("flat radio map");
    let mut tracker = Tracker::new(Arc::new(flat));
    group.throughput(Throughput::Elements(walk.len() as u64));
    let walks = vec![walk];
    group.bench_function("dataset_walk_scans", |b| b.iter(|| run(&mut tracker, &walks)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
