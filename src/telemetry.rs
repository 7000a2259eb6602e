//! Logs (tracing) and metrics (Prometheus text at `/metrics`).

use prometheus::{Encoder, HistogramOpts, HistogramVec, Histogram, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Install the tracing subscriber: `RUST_LOG` filter (default `info`), plain text to stderr.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The embedded broker's plugins print their whole configuration at info level, and the ACL
    // plugin's holds every device password: its crates log warnings and errors only, whatever
    // RUST_LOG says.
    let filter = ["rmqtt=warn", "rmqtt_acl=warn", "rmqtt_retainer=warn", "rmqtt_net=warn"]
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

/// What the embedded MQTT broker refused (`login`, `subscribe`, `publish`). Process-wide because
/// the broker starts before the server's [`Metrics`], which register it for `/metrics`.
pub static BROKER_REFUSED: std::sync::LazyLock<IntCounterVec> = std::sync::LazyLock::new(|| {
    IntCounterVec::new(Opts::new("clinicflow_mqtt_broker_refused_total", "Logins, subscriptions and publishes the embedded MQTT broker refused"), &["action"])
        .expect("valid metric")
});

/// Every metric the server exports. One per process, shared by `Arc`.
pub struct Metrics {
    registry: Registry,
    /// Tickets waiting per queue, updated after every command.
    pub queue_waiting: IntGaugeVec,
    /// Calls (call-next that found a patient) per queue.
    pub calls: IntCounterVec,
    /// Commands by name and outcome (`ok`, `rejected`, `unavailable`).
    pub commands: IntCounterVec,
    /// Time from a command reaching its queue actor to its events being durable, by command.
    pub command_seconds: HistogramVec,
    /// HTTP requests by route pattern and status.
    pub http_requests: IntCounterVec,
    /// Open patient WebSocket connections.
    pub ws_connections: prometheus::IntGauge,
    /// Patient connections ended by the server, by reason (`too_slow`, `idle`, `protocol`).
    pub ws_disconnects: IntCounterVec,
    /// Messages queued to patient connections.
    pub push_messages: prometheus::IntCounter,
    /// Ticket histories read from the journal by patient sessions, by why (`start`: a session
    /// starting; `resync`: the push router fell behind the committed stream). Live commits are
    /// never read back.
    pub push_history_reads: IntCounterVec,
    pub journal_commit_seconds: Histogram,
    pub journal_batch_events: Histogram,
    /// Displays' last status: 1 online, 0 offline (absent until a display speaks).
    pub display_online: IntGaugeVec,
    /// MQTT messages refused or ignored, by reason.
    pub mqtt_rejected: IntCounterVec,
    /// Incoming MQTT publishes dropped because the handler was behind.
    pub mqtt_dropped: prometheus::IntCounter,
    /// Journal commits that failed (the server stops after the first: see the writer).
    pub journal_failures: prometheus::IntCounter,
    /// From a patient's call committed to its message queued on the patient's connections.
    pub call_to_phone_seconds: Histogram,
    /// How long each called patient waited: check-in to call, per queue.
    pub queue_wait_seconds: HistogramVec,
    /// Services within their opening hours now (set when scraped).
    pub services_open: prometheus::IntGauge,
    /// Webhook attempts by hook and outcome (`delivered`, `retried`, `given_up`).
    pub webhooks: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let queue_waiting = IntGaugeVec::new(Opts::new("clinicflow_queue_waiting", "Tickets waiting in each queue"), &["queue"]).expect("valid metric");
        let calls = IntCounterVec::new(Opts::new("clinicflow_calls_total", "Patients called, per queue"), &["queue"]).expect("valid metric");
        let commands = IntCounterVec::new(Opts::new("clinicflow_commands_total", "Queue commands by name and outcome"), &["command", "outcome"]).expect("valid metric");
        let command_seconds = HistogramVec::new(
            HistogramOpts::new("clinicflow_command_seconds", "Queue command latency until durable")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["command"],
        )
        .expect("valid metric");
        let http_requests = IntCounterVec::new(Opts::new("clinicflow_http_requests_total", "HTTP requests by route and status"), &["route", "status"]).expect("valid metric");
        let ws_connections = prometheus::IntGauge::new("clinicflow_ws_connections", "Open patient WebSocket connections").expect("valid metric");
        let ws_disconnects = IntCounterVec::new(Opts::new("clinicflow_ws_disconnects_total", "Patient connections ended by the server"), &["reason"]).expect("valid metric");
        let push_messages = prometheus::IntCounter::new("clinicflow_push_messages_total", "Messages queued to patient connections").expect("valid metric");
        let push_history_reads =
            IntCounterVec::new(Opts::new("clinicflow_push_history_reads_total", "Ticket histories read from the journal by patient sessions"), &["why"]).expect("valid metric");
        let display_online = IntGaugeVec::new(Opts::new("clinicflow_display_online", "Display status: 1 online, 0 offline"), &["display"]).expect("valid metric");
        let mqtt_rejected = IntCounterVec::new(Opts::new("clinicflow_mqtt_rejected_total", "MQTT messages refused or ignored, by reason"), &["reason"]).expect("valid metric");
        let mqtt_dropped = prometheus::IntCounter::new("clinicflow_mqtt_dropped_total", "Incoming MQTT publishes dropped while the handler was behind").expect("valid metric");
        let webhooks = IntCounterVec::new(Opts::new("clinicflow_webhooks_total", "Webhook deliveries by hook and outcome"), &["hook", "outcome"]).expect("valid metric");
        let journal_commit_seconds = Histogram::with_opts(
            HistogramOpts::new("clinicflow_journal_commit_seconds", "Time of one journal transaction (group commit)")
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1]),
        )
        .expect("valid metric");
        let journal_batch_events = Histogram::with_opts(
            HistogramOpts::new("clinicflow_journal_batch_events", "Events per journal transaction")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0]),
        )
        .expect("valid metric");
        let journal_failures =
            prometheus::IntCounter::new("clinicflow_journal_failures_total", "Journal commits that failed (the server refuses further commands and stops)").expect("valid metric");
        let call_to_phone_seconds = Histogram::with_opts(
            HistogramOpts::new("clinicflow_call_to_phone_seconds", "From a call's commit to its message queued on the patient's connections")
                .buckets(vec![0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]),
        )
        .expect("valid metric");
        let queue_wait_seconds = HistogramVec::new(
            HistogramOpts::new("clinicflow_queue_wait_seconds", "How long each called patient waited, check-in to call")
                .buckets(vec![60.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0]),
            &["queue"],
        )
        .expect("valid metric");
        let services_open = prometheus::IntGauge::new(
            "clinicflow_services_open",
            "Services within their opening hours now (a service without hours is always open); 0 outside the hospital's day",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(Opts::new("clinicflow_build_info", "The running release (always 1)"), &["release"]).expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let start_time = prometheus::IntGauge::new("clinicflow_start_time_seconds", "When this server started (Unix seconds): a change is a restart").expect("valid metric");
        start_time.set(chrono::Utc::now().timestamp());
        // Counters with a fixed set of labels start at zero, so the dashboards and alerts see
        // them (and rates work) before the first event.
        for reason in ["too_slow", "idle", "protocol"] {
            ws_disconnects.with_label_values(&[reason]);
        }
        for reason in ["bad_ack", "bad_status", "unknown_display"] {
            mqtt_rejected.with_label_values(&[reason]);
        }
        for action in ["login", "client_id", "subscribe", "publish"] {
            BROKER_REFUSED.with_label_values(&[action]);
        }
        for c in [
            Box::new(journal_failures.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(call_to_phone_seconds.clone()),
            Box::new(queue_wait_seconds.clone()),
            Box::new(services_open.clone()),
            Box::new(build_info),
            Box::new(start_time),
            Box::new(queue_waiting.clone()),
            Box::new(calls.clone()),
            Box::new(commands.clone()),
            Box::new(command_seconds.clone()),
            Box::new(http_requests.clone()),
            Box::new(journal_commit_seconds.clone()),
            Box::new(ws_connections.clone()),
            Box::new(ws_disconnects.clone()),
            Box::new(push_messages.clone()),
            Box::new(push_history_reads.clone()),
            Box::new(webhooks.clone()),
            Box::new(display_online.clone()),
            Box::new(mqtt_rejected.clone()),
            Box::new(mqtt_dropped.clone()),
            Box::new(BROKER_REFUSED.clone()),
            Box::new(journal_batch_events.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            queue_waiting,
            calls,
            commands,
            command_seconds,
            http_requests,
            ws_connections,
            ws_disconnects,
            push_messages,
            push_history_reads,
            journal_commit_seconds,
            journal_batch_events,
            journal_failures,
            call_to_phone_seconds,
            queue_wait_seconds,
            services_open,
            webhooks,
            display_online,
            mqtt_rejected,
            mqtt_dropped,
        }
    }

    /// Prometheus text exposition format.
    /// Register a collector owned elsewhere (a subsystem keeps its own metrics beside its code).
    pub fn register(&self, c: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(c) {
            tracing::warn!(error = %e, "metric not registered");
        }
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
