//! Real PostgreSQL and MariaDB servers for the HIS poller tests: Debian's packages (installed by
//! `scripts/test`), each started in its own temp dir on a free loopback port and stopped when
//! dropped. Each has an administrator (the test plays the HIS with it) and `reader`, a user who may
//! only SELECT — the account clinicflow is given, as a hospital would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Database {
    /// The HIS's own account.
    pub admin_url: String,
    /// SELECT only: what clinicflow polls with.
    pub reader_url: String,
    stop: Option<Command>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(mut stop) = self.stop.take() {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e} (scripts/test installs postgresql and mariadb-server)"));
    assert!(out.status.success(), "{what}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

/// A command of PostgreSQL's; as the `postgres` user when we are root (the server refuses root).
fn pg_command(bin: &Path, name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    }
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql").map(|d| d.filter_map(|e| Some(e.ok()?.path().join("bin"))).filter(|p| p.join("initdb").exists()).collect()).unwrap_or_default();
    dirs.sort();
    dirs.pop().expect("PostgreSQL under /usr/lib/postgresql (scripts/test installs postgresql)")
}

/// A PostgreSQL server, started with `pg_ctl -w` (which waits until it takes connections).
pub fn postgres() -> Database {
    let dir = tempfile::tempdir().unwrap();
    if is_root() {
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()), "chown");
    }
    let bin = pg_bin();
    let data = dir.path().join("data");
    let port = free_port();
    run(pg_command(&bin, "initdb").arg("-D").arg(&data).args(["-U", "his", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]), "initdb");
    let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", dir.path().display());
    run(pg_command(&bin, "pg_ctl").arg("-D").arg(&data).args(["-w", "-t", "60", "-o", &opts, "-l"]).arg(dir.path().join("log")).arg("start"), "pg_ctl start");
    let mut stop = pg_command(&bin, "pg_ctl");
    stop.arg("-D").arg(&data).args(["-m", "immediate", "stop"]);
    let admin_url = format!("postgres://his@127.0.0.1:{port}/postgres");
    Database { reader_url: format!("postgres://reader:reader-pw@127.0.0.1:{port}/postgres"), admin_url, stop: Some(stop), child: None, _dir: dir }
}

/// A MariaDB server; ready when it says so on stderr.
pub fn mariadb() -> Database {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let user = if is_root() { "root".to_owned() } else { std::env::var("USER").unwrap_or_else(|_| "nobody".into()) };
    run(
        Command::new("mariadb-install-db").arg("--no-defaults").arg(format!("--datadir={}", data.display())).args(["--auth-root-authentication-method=normal", "--skip-test-db", &format!("--user={user}")]),
        "mariadb-install-db",
    );
    let mut child = Command::new("mariadbd")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", dir.path().join("sock").display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!("--port={port}"))
        .args(["--bind-address=127.0.0.1", &format!("--user={user}"), "--innodb-flush-log-at-trx-commit=0", "--skip-name-resolve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mariadbd (scripts/test installs mariadb-server)");
    // Its log goes on after "ready": a thread reads it to the end, so the server never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut log = String::new();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&l);
            log.push('\n');
            if l.contains("ready for connections") {
                let _ = tx.send(Ok(()));
            }
        }
        let _ = tx.send(Err(log));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(Ok(())) => {}
        Ok(Err(log)) => panic!("mariadbd did not start:\n{log}"),
        Err(_) => panic!("mariadbd did not start within 60 s"),
    }
    let admin_url = format!("mysql://root@127.0.0.1:{port}/his");
    run(
        Command::new("mariadb").arg("--no-defaults").arg(format!("--socket={}", dir.path().join("sock").display())).args(["--user=root", "-e", "CREATE DATABASE his CHARACTER SET utf8mb4"]),
        "create database",
    );
    Database { reader_url: format!("mysql://reader:reader-pw@127.0.0.1:{port}/his"), admin_url, stop: None, child: Some(child), _dir: dir }
}
