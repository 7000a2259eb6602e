//! Wires storage → actors → edges in one place.

use crate::actors::{Directory, Floor, QueueHandle, SessionHub};
use crate::configuration::Settings;
use crate::domain::event::TicketData;
use crate::domain::ids::QueueId;
use crate::domain::queue::{QueueState, Status};
use crate::edges::http::{self, AppState, Auth};
use crate::storage::{JournalStore, JournalWriter, SqliteJournal};
use crate::telemetry::Metrics;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

pub struct Application {
    addr: SocketAddr,
    hl7: Option<SocketAddr>,
    server: actix_web::dev::Server,
    pub floor: Floor,
    /// Resolves when a journal commit failed: the server stops, non-zero.
    journal_failed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

/// Rebuild every queue's live state from the journal.
fn rebuild(store: &mut dyn JournalStore, settings: &Settings) -> anyhow::Result<BTreeMap<QueueId, QueueState>> {
    let mut states = BTreeMap::new();
    let mut events = 0usize;
    for (id, spec) in &settings.hospital.queues {
        let mut state = QueueState::new(spec.clone());
        for e in store.load_current_day(id).with_context(|| format!("loading queue {id}"))? {
            state.apply(&e.event, e.at);
            events += 1;
        }
        states.insert(id.clone(), state);
    }
    tracing::info!(queues = states.len(), events, "state rebuilt from the journal");
    Ok(states)
}

/// Transfers whose source committed and destination did not.
fn interrupted_transfers(states: &BTreeMap<QueueId, QueueState>) -> Vec<(QueueId, TicketData, QueueId)> {
    let mut out = Vec::new();
    for (from, s) in states {
        for t in s.tickets().filter(|t| t.status == Status::Transferred) {
            let Some(to) = &t.transferred_to else { continue };
            if states.get(to).is_some_and(|d| d.ticket(&t.data.id).is_none()) {
                out.push((from.clone(), t.data.clone(), to.clone()));
            }
        }
    }
    out
}

/// Builds each radio map against its venue map and starts the position desk (off, answering
/// "no radio map", when there is none), with the sweeper that ends finished visits.
fn start_positioning(
    settings: &Settings,
    maps: &crate::map::store::MapStore,
    orders: &Arc<crate::storage::orders::OrderStore>,
    floor: &Floor,
    metrics: &Arc<Metrics>,
    clock: &crate::clock::Clock,
) -> anyhow::Result<crate::actors::positions::PositionDesk> {
    use crate::position::radio::VenueRef;
    let atlas = maps.current();
    let mut radios = Vec::new();
    for (path, file) in &settings.radio {
        let VenueRef::Map { id } = &file.venue else { anyhow::bail!("{}: not bound to a venue map", path.display()) };
        let venue = atlas.venue(id).with_context(|| format!("{}: venue {id:?} is not one of the served maps", path.display()))?.clone();
        anyhow::ensure!(!radios.iter().any(|(_, v): &(_, Arc<crate::map::VenueMap>)| v.id == venue.id), "{}: a second radio map for venue {id:?}", path.display());
        let built = crate::position::RadioMap::build(file.clone(), Some(&venue)).with_context(|| format!("radio map {}", path.display()))?;
        tracing::info!(venue = %venue.id, gateways = built.anchors(), states = built.space.len(), "radio map loaded");
        radios.push((Arc::new(built), venue));
    }
    let tags_path = settings.data_dir.join("tags.sqlite");
    let tags = Arc::new(crate::storage::tags::TagStore::open(&tags_path).with_context(|| format!("opening {}", tags_path.display()))?);
    let today = clock.today(&settings.hospital.tz).to_string();
    let rules = crate::position::live::LiveRules { retention_ms: settings.position_retention.as_millis() as i64, ..Default::default() };
    let desk = crate::actors::positions::PositionDesk::start(radios, tags, &today, rules, metrics, clock.clone())?;
    crate::actors::positions::spawn_visit_sweeper(desk.clone(), floor.clone(), orders.clone(), settings.visit_idle, settings.visit_sweep, clock.clone());
    Ok(desk)
}

impl Application {
    /// Open the journal, rebuild state, start the actors and bind the HTTP listener.
    /// Must run inside an actix system (`actix_web::main`).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // The maps first: a broken map stops the start with every problem listed.
        let maps = Arc::new(crate::map::store::MapStore::new(settings.maps.clone()).map_err(|e| anyhow::anyhow!("the map is not valid:\n{e}"))?);
        let metrics = Arc::new(Metrics::new());
        let orders_path = settings.data_dir.join("orders.sqlite");
        let orders = Arc::new(crate::storage::orders::OrderStore::open(&orders_path).with_context(|| format!("opening {}", orders_path.display()))?);
        let path = settings.data_dir.join("journal.sqlite");
        let mut store = SqliteJournal::open_writer(&path).with_context(|| format!("opening journal {}", path.display()))?;
        // A damaged journal would lose acknowledged commands and issue their numbers again:
        // refuse to start, naming where. The walk covers what came since the last verification
        // (the whole journal is `clinicflow journal verify`'s, safe to run while serving).
        match store.verify(&path, crate::storage::Walk::SinceMark).with_context(|| format!("verifying journal {}", path.display()))? {
            Ok(v) => tracing::info!(after = v.from, events = v.events, last_seq = v.last_seq, unchained = v.unchained, witnessed = ?v.witnessed, "journal verified"),
            Err(damage) => {
                tracing::error!(%damage, "the journal is damaged; not starting");
                anyhow::bail!(
                    "the journal {} is damaged: {damage}.\nclinicflow will not start on it (it would issue acknowledged numbers again). `clinicflow journal verify --data {}` reports it; restore the data dir from its last backup (if journal.sqlite was restored on purpose without its journal.sqlite-head, remove that file).",
                    path.display(),
                    settings.data_dir.display()
                );
            }
        }
        let states = rebuild(&mut store, &settings)?;
        let pending = interrupted_transfers(&states);
        let (journal, _thread) = JournalWriter::start(Box::new(store), settings.limits.journal, metrics.clone());
        let journal_failed = Box::pin(journal.failure());

        // The one clock every actor reads: the server's (pinned by `serve --clock`, or the
        // system's). Tests of the actors pass a manual one.
        let clock = crate::clock::Clock::server();
        let (directory, stream) = (Directory::default(), crate::actors::CommitStream::default());
        // The queues run on threads of their own, apart from the HTTP workers and from the
        // followers of the committed stream (displays, phones, reports) on this one; each queue
        // stays on one thread (its actor), queues are dealt round the threads.
        let threads: Vec<actix_rt::Arbiter> = (0..settings.queue_threads.max(1)).map(|_| actix_rt::Arbiter::new()).collect();
        let queues: BTreeMap<_, _> = states
            .into_iter()
            .enumerate()
            .map(|(i, (id, s))| {
                let on = threads[i % threads.len()].handle();
                (id, QueueHandle::start_on(&on, s, journal.clone(), directory.clone(), stream.clone(), metrics.clone(), clock.clone()))
            })
            .collect();
        let hospital = Arc::new(settings.hospital.clone());
        let floor = Floor::new(hospital.clone(), queues, directory, stream);
        let recovered = floor.recover_transfers(pending).await.context("finishing interrupted transfers")?;
        if recovered > 0 {
            tracing::warn!(recovered, "interrupted transfers finished");
        }

        let positions = start_positioning(&settings, &maps, &orders, &floor, &metrics, &clock)?;
        let reader = SqliteJournal::open(&path).context("opening the journal for reading")?;
        let guide = crate::actors::guide::Guide { floor: floor.clone(), orders, maps: maps.clone(), positions: positions.clone(), clock: clock.clone() };
        let hub = SessionHub::start(&floor, Box::new(reader), metrics.clone(), settings.limits.push, Some(guide.clone()));
        crate::actors::webhooks::start(hospital.clone(), &settings.site.webhooks, &floor, &path, &settings.data_dir, metrics.clone())?;
        
        let displays = crate::edges::mqtt::DisplayRegistry::new(&hospital);
        let desk = crate::actors::delivery::DeliveryDesk::start(hospital.delivery, hospital.displays.iter().map(|d| d.id.clone()).collect(), &metrics, clock.clone());
        let display_feed = crate::actors::displays::DisplayFeed::start(&floor, desk.clone()).await;
        if let Some(m) = settings.mqtt.clone() {
            let ready = crate::edges::mqtt::start(m, floor.clone(), display_feed.clone(), displays.clone(), positions.clone(), settings.site.encodings.clone(), metrics.clone());
            // Say "listening" only once devices can be heard; a broker that is down does not
            // hold the start (the edge keeps reconnecting, and devices resend until answered).
            if tokio::time::timeout(std::time::Duration::from_secs(10), ready).await.is_err() {
                tracing::warn!("the MQTT broker has not granted the server's subscriptions within 10 s; serving HTTP meanwhile");
            }
        }
        let ws_state = web::Data::new(crate::edges::ws::WsState { hub, limits: settings.limits.push, displays: display_feed, positions: positions.clone() });
        let prefix = settings.mqtt.as_ref().map_or_else(|| format!("clinicflow/{}", hospital.site), |m| m.prefix.clone());
        let device_credentials = Arc::new(crate::edges::broker::credentials(&hospital, &prefix, settings.device_key.expose(), &settings.gateways())?);
        let his = crate::actors::his::HisDesk::new(floor.clone(), {
            let p = settings.data_dir.join("his.sqlite");
            Arc::new(crate::storage::his::HisStore::open(&p).with_context(|| format!("opening {}", p.display()))?)
        }, guide.orders.clone(), &metrics, clock.clone());
        let hl7 = match settings.hl7 {
            None => None,
            Some(a) => {
                let l = std::net::TcpListener::bind(a).with_context(|| format!("the HL7 port {a} is in use (use --hl7 ADDR:PORT or off)"))?;
                l.set_nonblocking(true)?;
                let bound = l.local_addr()?;
                let l = tokio::net::TcpListener::from_std(l)?;
                actix_rt::spawn(crate::edges::mllp::serve(l, his.clone(), settings.hl7_allow.clone()));
                Some(bound)
            }
        };
        let mut his_polls = std::collections::BTreeMap::new();
        for p in &settings.site.his_poll {
            let url = p.resolve_url().map_err(anyhow::Error::msg)?;
            let handle = crate::edges::dbpoll::start(p.clone(), &url, his.clone()).with_context(|| format!("his.poll {}: the url", p.name))?;
            his_polls.insert(p.name.clone(), handle);
        }
        let state = web::Data::new(AppState {
            his_polls: Arc::new(his_polls),
            his,
            displays,
            delivery: desk,
            floor: floor.clone(),
            auth: Auth::new(settings.staff_token.expose(), &settings.site.tokens, settings.patient_key.expose(), floor.hospital.tz, clock.clone()),
            metrics,
            journal,
            reports: crate::actors::reports::ReportDesk::start(&floor, path.clone(), clock.clone()),
            max_body_bytes: settings.limits.max_body_bytes,
            maps,
            guide,
            device_credentials,
            positions,
        });
        let listener = TcpListener::bind(&settings.http).with_context(|| format!("binding {}", settings.http))?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(ws_state.clone())
                .wrap_fn(http::count_requests)
                .configure(http::configure)
                .configure(http::soap::configure)
                .configure(crate::edges::ws::configure)
                .configure(crate::edges::pages::configure)
                .default_service(web::to(http::no_route))
        })
        .workers(settings.http_workers)
        .max_connections(settings.limits.max_connections_per_worker)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
        Ok(Self { addr, hl7, server, floor, journal_failed })
    }

    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Where HL7 over MLLP listens, when it does.
    pub fn hl7_address(&self) -> Option<SocketAddr> {
        self.hl7
    }

    /// Serve until `shutdown` resolves, then stop gracefully (in-flight requests finish).
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = self.server;
        tokio::select! {
            r = server => Ok(r?),
            _ = shutdown => {
                handle.stop(true).await;
                Ok(())
            }
            _ = self.journal_failed => {
                // The refusals (503) of the commands that were waiting get a moment to go out,
                // then the process ends non-zero so its supervisor restarts it on what the
                // journal holds.
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                handle.stop(true).await;
                anyhow::bail!("the journal failed to commit (see the error above); stopping so the supervisor restarts clinicflow on what the journal holds")
            }
        }
    }
}
