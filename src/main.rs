//! `clinicflow`: telemetry → settings → Application::build → run until a signal.

use clap::{Parser, Subcommand};
use clinicflow::configuration::{MqttFlags, Settings};
use clinicflow::startup::Application;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "clinicflow", version, about = "Real-time server of a hospital outpatient floor")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: demo hospital by default, SQLite journal under ./data.
    Serve {
        /// Data directory (journal, secrets).
        #[arg(long, default_value = "./data", env = "CLINICFLOW_DATA")]
        data: PathBuf,
        /// HTTP listen address; port 0 picks a free port.
        #[arg(long, default_value = "0.0.0.0:8080", env = "CLINICFLOW_HTTP")]
        http: String,
        /// Hospital config (TOML); the embedded demo hospital when absent.
        #[arg(long, env = "CLINICFLOW_CONFIG")]
        config: Option<PathBuf>,
        /// Embedded MQTT broker for displays and keypads: ADDR:PORT (port 0 picks one), or off.
        #[arg(long, default_value = "0.0.0.0:1883", env = "CLINICFLOW_MQTT")]
        mqtt: String,
        /// An external MQTT broker instead of the embedded one: mqtt://[user[:password]@]host[:port].
        #[arg(long, env = "CLINICFLOW_MQTT_BROKER")]
        mqtt_broker: Option<String>,
        /// MQTT topic prefix (default clinicflow/{site}).
        #[arg(long, env = "CLINICFLOW_MQTT_PREFIX")]
        mqtt_prefix: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    clinicflow::telemetry::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve { data, http, config, mqtt, mqtt_broker, mqtt_prefix } => {
            serve(data, http, config, MqttFlags { embedded: mqtt, broker: mqtt_broker, prefix: mqtt_prefix })
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clinicflow: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(data: PathBuf, http: String, config: Option<PathBuf>, mqtt: MqttFlags) -> anyhow::Result<()> {
    let token = std::env::var("CLINICFLOW_STAFF_TOKEN").ok();
    let mut settings = Settings::load(&data, &http, config.as_deref(), token, &mqtt)?;
    if let Some(listen) = settings.embedded_broker {
        let addr = clinicflow::edges::broker::start(listen)?;
        if let Some(m) = settings.mqtt.as_mut() {
            m.port = addr.port();
        }
        println!("mqtt: embedded broker on {addr}");
    }
    actix_web::rt::System::new().block_on(async move {
        let staff = settings.staff_token.clone();
        let hospital = settings.hospital.name.clone();
        let queues = settings.hospital.queues.len();
        let mqtt = settings.mqtt.clone();
        let app = Application::build(settings).await?;
        let addr = app.address();
        let shown = if addr.ip().is_unspecified() { format!("127.0.0.1:{}", addr.port()) } else { addr.to_string() };
        // The operator's first screen: where it listens and the token to use. stdout on purpose.
        println!("clinicflow serving {hospital} ({queues} queues)");
        println!("listening on http://{shown}");
        println!("staff token: {}", staff.expose());
        println!("api docs: http://{shown}/api/v1/openapi.json");
        match &mqtt {
            Some(m) => println!("mqtt: displays and keypads via {}:{}, topics under {}/", m.host, m.port, m.prefix),
            None => println!("mqtt: off"),
        }
        app.run_until(shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
