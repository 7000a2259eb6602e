//! The Debian package, for real on this machine: built (`scripts/package`), installed with
//! `dpkg -i`, its systemd unit checked by `systemd-analyze verify`, the installed binary serving
//! the packaged config as the package's own user on the package's data dir, then removed and
//! purged — with the data kept.
//!
//! It installs system-wide, so it needs root, dpkg and cargo-deb and is `#[ignore]`d in a plain
//! `cargo test`; `scripts/test` runs it (`--ignored`) as root, after the rest of the suite.

#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::{Command, Output};

const DATA: &str = "/var/lib/clinicflow";
const UNIT: &str = "/usr/lib/systemd/system/clinicflow.service";

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn ok(cmd: &str, args: &[&str]) -> String {
    let out = run(cmd, args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd} {args:?}:\n{text}");
    text
}

fn mode_owner(path: &str) -> (u32, String, String) {
    let out = ok("stat", &["-c", "%a %U %G", path]);
    let mut p = out.split_whitespace();
    (u32::from_str_radix(p.next().unwrap(), 8).unwrap(), p.next().unwrap().to_owned(), p.next().unwrap().to_owned())
}

/// Leaves the machine as it was: package purged, data dir and user gone.
fn clean() {
    let _ = run("dpkg", &["--purge", "clinicflow"]);
    let _ = std::fs::remove_dir_all(DATA);
    let _ = run("userdel", &["clinicflow"]);
}

#[test]
#[ignore = "installs a .deb system-wide: needs root, dpkg and cargo-deb; scripts/test runs it"]
fn the_package_installs_serves_its_example_config_and_removes_keeping_the_data() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "dpkg -i needs root (scripts/test runs this as root)");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = ok(root.join("scripts/package").to_str().unwrap(), &[]);
    let deb = built.lines().rev().find(|l| l.trim_end().ends_with(".deb")).expect("scripts/package prints the .deb").trim().to_owned();
    clean();

    let installed = ok("dpkg", &["-i", &deb]);
    assert!(installed.contains("installed, not started"), "{installed}");
    // Its user, its private data dir, its config readable by it and root only.
    assert!(ok("getent", &["passwd", "clinicflow"]).contains(":/var/lib/clinicflow:/usr/sbin/nologin"));
    assert_eq!(mode_owner(DATA), (0o700, "clinicflow".into(), "clinicflow".into()));
    assert_eq!(mode_owner("/etc/clinicflow/hospital.toml"), (0o640, "root".into(), "clinicflow".into()));
    assert_eq!(mode_owner("/etc/clinicflow/clinicflow.env").0, 0o640);
    let conffiles = ok("dpkg-query", &["--showformat=${Conffiles}", "--show", "clinicflow"]);
    assert!(conffiles.contains("/etc/clinicflow/hospital.toml") && conffiles.contains("/etc/clinicflow/clinicflow.env"), "{conffiles}");
    // Installing starts and enables nothing.
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/clinicflow.service").exists(), "the package enabled the service");
    assert!(run("pgrep", &["-x", "clinicflow"]).stdout.is_empty(), "the package started the server");
    assert!(Path::new("/usr/share/clinicflow/grafana/clinicflow.json").exists() && Path::new("/usr/share/clinicflow/prometheus/clinicflow-rules.yml").exists());

    // The unit: systemd finds nothing to say about it (it warns, exit 0, on unknown keys).
    let out = run("systemd-analyze", &["verify", UNIT]);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify {UNIT}:\n{said}");
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in ["User=clinicflow", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "LimitNOFILE=", "StandardOutput=journal"] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "the unit lacks {line}");
    }

    // The installed binary checks and serves the packaged config, as the service would: its
    // user, its data dir, the environment the unit gives it.
    assert!(ok("/usr/bin/clinicflow", &["config", "check", "/etc/clinicflow/hospital.toml"]).contains("ok"));
    let id = |flag: &str| ok("id", &[flag, "clinicflow"]).trim().parse::<u32>().unwrap();
    let mut cmd = Command::new("/usr/bin/clinicflow");
    {
        use std::os::unix::process::CommandExt as _;
        // The server itself as the user (no runuser in between, so killing it is killing it).
        cmd.uid(id("-u")).gid(id("-g"));
    }
    cmd.args(["serve", "--http", "127.0.0.1:0", "--mqtt", "127.0.0.1:0"])
        .env("CLINICFLOW_DATA", DATA)
        .env("CLINICFLOW_CONFIG", "/etc/clinicflow/hospital.toml")
        .env("RUST_LOG", "warn");
    let mut served = server::spawn(cmd);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let token = std::fs::read_to_string(Path::new(DATA).join("staff-token")).unwrap();
        let client = reqwest::Client::new();
        let r = client.post(format!("{}/api/v1/queues/internal-medicine/tickets", served.base)).bearer_auth(token.trim()).json(&serde_json::json!({"patient_id": "PKG-1", "name": "张三"})).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let q: serde_json::Value = client.get(format!("{}/api/v1/queues/internal-medicine", served.base)).bearer_auth(token.trim()).send().await.unwrap().json().await.unwrap();
        assert_eq!(q["counts"]["waiting"], 1, "{q}");
        let metrics = client.get(format!("{}/metrics", served.base)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("clinicflow_build_info{release=\"") , "{metrics}");
    });
    let _ = served.child.kill();
    let _ = served.child.wait();
    // Everything it wrote is its own and private.
    for f in std::fs::read_dir(DATA).unwrap() {
        let p = f.unwrap().path();
        let (mode, user, _) = mode_owner(p.to_str().unwrap());
        assert!(mode & 0o077 == 0 && user == "clinicflow", "{}: {mode:o} {user}", p.display());
    }
    // A backup as root of the service's data is refused (it could leave root's files behind).
    let out = run("/usr/bin/clinicflow", &["backup", "--data", DATA, "--to", "/tmp/clinicflow-package-test.tar.gz"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("sudo -u clinicflow"));

    // Removed, then purged: the program and config go, the data stays.
    ok("dpkg", &["-r", "clinicflow"]);
    assert!(!Path::new("/usr/bin/clinicflow").exists() && !Path::new(UNIT).exists());
    assert!(Path::new("/etc/clinicflow/hospital.toml").exists(), "remove keeps the config");
    ok("dpkg", &["--purge", "clinicflow"]);
    assert!(!Path::new("/etc/clinicflow/hospital.toml").exists(), "purge removes the config");
    assert!(Path::new(DATA).join("journal.sqlite").exists(), "the hospital's data was deleted");
    clean();
}
