//! `DeliveryDesk`: follows every call sent to a wall display until the display acknowledges it
//! shown and spoken (MQTT `displays/{id}/ack`, or the browser display's socket), measures the
//! delays, and raises alarms (log, metric, `GET /api/v1/displays/alarms`) for calls not shown or
//! not spoken in time and for displays that went offline. The bookkeeping is the pure
//! [`Delivery`]; this task feeds it and reports.

use crate::domain::delivery::{Acked, Alarm, AlarmKind, Change, Delivery, DeliveryRules, DisplayDelivery, Stage};
use crate::domain::event::UnixMs;
use crate::telemetry::Metrics;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Notes waiting for the desk; when full, acknowledgements are dropped and counted (the desk
/// never holds up the display feed).
const INBOX: usize = 8_192;
/// How often overdue acknowledgements are looked for.
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug)]
enum Note {
    Sent { display: String, seq: i64, number: String, at: UnixMs },
    Ack { display: String, seq: i64, stage: Stage, at: UnixMs },
    Status { display: String, online: bool, at: UnixMs },
}

/// What the API shows: alarms in force and each display's delivery figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeliveryView {
    pub alarms: Vec<Alarm>,
    pub displays: BTreeMap<String, DisplayDelivery>,
}

#[derive(Clone)]
pub struct DeliveryDesk {
    tx: mpsc::Sender<Note>,
    /// Where the desk reads the time; the edges stamp acknowledgements with it too.
    clock: crate::clock::Clock,
    view: Arc<RwLock<DeliveryView>>,
    metrics: Arc<DeliveryMetrics>,
}

struct DeliveryMetrics {
    shown: HistogramVec,
    spoken: HistogramVec,
    acks: IntCounterVec,
    alarms: IntCounterVec,
    alarm: IntGaugeVec,
}

impl DeliveryMetrics {
    fn new(m: &Metrics) -> Self {
        let buckets = vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];
        let shown = HistogramVec::new(
            HistogramOpts::new("clinicflow_display_shown_seconds", "From a call's publication to the display acknowledging it shown").buckets(buckets.clone()),
            &["display"],
        )
        .expect("valid metric");
        let spoken = HistogramVec::new(
            HistogramOpts::new("clinicflow_display_spoken_seconds", "From a call's publication to the display acknowledging its announcement spoken").buckets(buckets),
            &["display"],
        )
        .expect("valid metric");
        let acks = IntCounterVec::new(Opts::new("clinicflow_display_acks_total", "Display acknowledgements by result"), &["result"]).expect("valid metric");
        let alarms = IntCounterVec::new(Opts::new("clinicflow_display_alarms_total", "Display alarms raised, by display and kind"), &["display", "kind"]).expect("valid metric");
        let alarm = IntGaugeVec::new(Opts::new("clinicflow_display_alarm", "1 while a display alarm of this kind is in force"), &["display", "kind"]).expect("valid metric");
        for c in [
            Box::new(shown.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(spoken.clone()),
            Box::new(acks.clone()),
            Box::new(alarms.clone()),
            Box::new(alarm.clone()),
        ] {
            m.register(c);
        }
        Self { shown, spoken, acks, alarms, alarm }
    }
}

impl DeliveryDesk {
    /// Start the desk on the current tokio runtime.
    pub fn start(rules: DeliveryRules, displays: Vec<String>, metrics: &Metrics, clock: crate::clock::Clock) -> Self {
        let (tx, rx) = mpsc::channel(INBOX);
        let view = Arc::new(RwLock::new(DeliveryView::default()));
        let dm = Arc::new(DeliveryMetrics::new(metrics));
        // Every configured display is on the dashboards from the start: offline (0) until it
        // says otherwise, no alarm, no latency yet; a screen that never came up is one to see.
        for d in &displays {
            metrics.display_online.with_label_values(&[d]).set(0);
            dm.shown.with_label_values(&[d]);
            dm.spoken.with_label_values(&[d]);
            for kind in [AlarmKind::NotShown, AlarmKind::NotSpoken, AlarmKind::Offline] {
                dm.alarm.with_label_values(&[d, kind.as_str()]).set(0);
                dm.alarms.with_label_values(&[d, kind.as_str()]);
            }
        }
        let metrics = dm;
        let book = Delivery::new(rules, displays);
        tokio::spawn(run(book, rx, view.clone(), metrics.clone(), clock.clone()));
        Self { tx, clock, view, metrics }
    }

    /// Now, on the desk's clock: what acknowledgements and status changes are stamped with.
    pub fn now_ms(&self) -> UnixMs {
        self.clock.now_ms()
    }

    pub fn sent(&self, display: &str, seq: i64, number: &str, at: UnixMs) {
        self.note(Note::Sent { display: display.to_owned(), seq, number: number.to_owned(), at });
    }

    pub fn ack(&self, display: &str, seq: i64, stage: Stage, at: UnixMs) {
        self.note(Note::Ack { display: display.to_owned(), seq, stage, at });
    }

    pub fn status(&self, display: &str, online: bool, at: UnixMs) {
        self.note(Note::Status { display: display.to_owned(), online, at });
    }

    /// An acknowledgement that could not be read (counted, otherwise ignored).
    pub fn invalid(&self) {
        self.metrics.acks.with_label_values(&["invalid"]).inc();
    }

    fn note(&self, n: Note) {
        if self.tx.try_send(n).is_err() {
            self.metrics.acks.with_label_values(&["dropped"]).inc();
        }
    }

    pub fn view(&self) -> DeliveryView {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn run(mut book: Delivery, mut rx: mpsc::Receiver<Note>, view: Arc<RwLock<DeliveryView>>, m: Arc<DeliveryMetrics>, clock: crate::clock::Clock) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let changes = tokio::select! {
            n = rx.recv() => match n {
                None => break,
                Some(Note::Sent { display, seq, number, at }) => { book.sent(&display, seq, &number, at); vec![] }
                Some(Note::Ack { display, seq, stage, at }) => {
                    let (acked, changes) = book.ack(&display, seq, stage, at);
                    let result = match acked {
                        Acked::Shown { delay_ms } => { m.shown.with_label_values(&[&display]).observe(delay_ms as f64 / 1000.0); "shown" }
                        Acked::Spoken { delay_ms } => { m.spoken.with_label_values(&[&display]).observe(delay_ms as f64 / 1000.0); "spoken" }
                        Acked::Repeat => "repeat",
                        Acked::Unknown => "unknown",
                    };
                    m.acks.with_label_values(&[result]).inc();
                    changes
                }
                Some(Note::Status { display, online, at }) => book.status(&display, online, at),
            },
            _ = tick.tick() => book.tick(clock.now_ms()),
        };
        for c in &changes {
            match c {
                Change::Raised(a) => {
                    m.alarms.with_label_values(&[&a.display, a.kind.as_str()]).inc();
                    m.alarm.with_label_values(&[&a.display, a.kind.as_str()]).set(1);
                    tracing::warn!(display = %a.display, kind = a.kind.as_str(), seq = ?a.seq, number = ?a.number, "display alarm");
                }
                Change::Cleared(a) => {
                    m.alarm.with_label_values(&[&a.display, a.kind.as_str()]).set(0);
                    tracing::info!(display = %a.display, kind = a.kind.as_str(), "display alarm cleared");
                }
            }
        }
        let mut v = view.write().unwrap_or_else(|p| p.into_inner());
        v.alarms = book.alarms();
        v.displays = book.stats().clone();
    }
}
