//! Deploy paths: the giftdrop binary started the way an operator starts it,
//! with `.env.example` as its whole environment. (docker-compose.yml has its
//! own smoke test, `scripts/compose-smoke`, which CI runs after the tests.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::CommandFactory;
use giftdrop_domain::jobs::{JobPayload, SendEmail};
use giftdrop_domain::keys::Namespace;
use giftdrop_jobs::queues::JobQueues;
use tokio::process::{Child, Command};

use crate::support::{
    eventually, fresh_namespace, leaves_work, redis_url, server_url, temp_path, unborn_database,
};

/// The example configuration at the repository's root.
fn env_example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example")
}

/// An env file read as Docker's `--env-file` reads it: every `KEY=VALUE`
/// line verbatim (no quotes removed, nothing expanded, spaces kept), lines
/// starting with `#` and blank lines skipped.
fn env_file(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).expect("env file readable");
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// `vars` with `key` set to `value`.
fn set(vars: &mut [(String, String)], key: &str, value: String) {
    let entry = vars
        .iter_mut()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{key} is in the env file"));
    entry.1 = value;
}

/// A `giftdrop <mode>` process with exactly `vars` as its environment,
/// its output in `dir`; killed when dropped.
struct Process {
    mode: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(mode: &'static str, vars: &[(String, String)], dir: &Path) -> Self {
        let log = dir.join(format!("{mode}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_giftdrop"))
            .arg(mode)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .current_dir(dir)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("giftdrop starts");
        Self { mode, child, log }
    }

    /// Its output so far, for failure messages.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with its output, unless it is still running.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("process status") {
            panic!(
                "giftdrop {} exited ({status}):\n{}",
                self.mode,
                self.output()
            );
        }
    }

    /// Waits until it exits; panics, with its output, unless it succeeded.
    async fn assert_succeeds(mut self) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("exits within a minute")
            .expect("process status");
        assert!(
            status.success(),
            "giftdrop {} exited ({status}):\n{}",
            self.mode,
            self.output()
        );
    }

    /// Kills it and waits until it is gone (its port is free again).
    async fn stop(mut self) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("process status");
    }
}

/// Waits until `GET url` answers 200 while `process` keeps running.
async fn ready(process: &mut Process, url: &str) {
    giftdrop::install_crypto_provider();
    let client = reqwest::Client::new();
    eventually(&format!("giftdrop {} ready", process.mode), || {
        process.assert_running();
        let request = client.get(url).timeout(Duration::from_secs(2)).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
}

/// Queues an email for the workers of `namespace`, as the outbox relay would.
async fn queue_email(namespace: &str, subject: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let redis = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis reachable");
    let queues = JobQueues::new(redis, &Namespace::new(namespace.to_owned()));
    let email = SendEmail {
        to: "ops@example.com".into(),
        subject: subject.into(),
        body: "Sent by the worker.".into(),
        dedupe_key: format!("deploy:{subject}"),
    };
    queues
        .push(
            SendEmail::KIND,
            serde_json::to_value(email).expect("JSON"),
            None,
        )
        .await
        .expect("job queued");
}

/// The text of every `.eml` file in `dir` (none if it does not exist yet).
fn mails(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .collect()
}

/// Every mode comes up with `.env.example` as its whole environment, as
/// `docker run --env-file .env.example` gives it; only `DATABASE_URL` (a
/// database of its own, not yet created) and `REDIS_NAMESPACE` (a namespace
/// of its own) are changed. Its `HTTP_ADDR` (port 8000) is kept, so the
/// serving modes run one after the other.
#[tokio::test(crate = "crate::support::harness")]
async fn every_mode_starts_with_env_example_as_its_environment() {
    let mut vars = env_file(&env_example());
    let database = unborn_database();
    let namespace = fresh_namespace();
    leaves_work(
        &namespace,
        "the worker is killed as soon as it sent the email, maybe before it acknowledged the job",
    );
    set(
        &mut vars,
        "DATABASE_URL",
        format!("{}/{database}", server_url()),
    );
    set(&mut vars, "REDIS_NAMESPACE", namespace.clone());
    let addr: std::net::SocketAddr = vars
        .iter()
        .find(|(k, _)| k == "HTTP_ADDR")
        .and_then(|(_, v)| v.parse().ok())
        .expect("HTTP_ADDR is an address");
    let health = format!("http://127.0.0.1:{}/health/ready", addr.port());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", addr.port())).is_err(),
        "port {} must be free: this test serves on .env.example's HTTP_ADDR",
        addr.port()
    );
    let dir = temp_path("giftdrop-env-example");
    std::fs::create_dir_all(&dir).expect("working directory");

    // migrate creates the database and migrates it.
    Process::start("migrate", &vars, &dir)
        .assert_succeeds()
        .await;

    let mut serve = Process::start("serve", &vars, &dir);
    ready(&mut serve, &health).await;
    serve.stop().await;

    // The worker's job loops run: a queued email is sent (written under
    // MAIL_DIR, from MAIL_FROM's default, the variable being empty).
    let mut worker = Process::start("worker", &vars, &dir);
    queue_email(&namespace, "deploy check").await;
    eventually("the worker to send the queued email", || {
        worker.assert_running();
        let sent = mails(&dir.join("mail"));
        async move {
            sent.iter()
                .any(|mail| mail.contains("Subject: deploy check"))
        }
    })
    .await;
    let sent = mails(&dir.join("mail")).join("\n");
    assert!(
        sent.contains("From: giftdrop <no-reply@giftdrop.local>"),
        "{sent}"
    );
    worker.assert_running();
    worker.stop().await;

    let mut all = Process::start("all", &vars, &dir);
    ready(&mut all, &health).await;
    all.stop().await;
    std::fs::remove_dir_all(&dir).expect("working directory removed");
}

/// Every value in `.env.example` reads the same in Docker's `--env-file`
/// (verbatim), compose's env file and a shell (`set -a; . ./.env.example`):
/// no quotes, spaces, `$`, `#` or redirections.
#[test]
fn env_example_values_need_no_quoting() {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    for (key, value) in env_file(&env_example()) {
        assert!(
            value.chars().all(safe),
            "{key}={value} needs quoting somewhere"
        );
    }
}

/// `.env.example` names every setting, and nothing else but `RUST_LOG`.
#[test]
fn env_example_names_every_setting() {
    let settings: BTreeSet<String> = giftdrop::cli::Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .chain(["RUST_LOG".to_owned()])
        .collect();
    let example: BTreeSet<String> = env_file(&env_example())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(example, settings);
}
