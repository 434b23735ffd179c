//! The harness's teardown (`support/teardown.rs`), seen from outside: a
//! test that left work behind fails, naming it, and whatever a test's
//! outcome, its database and Redis namespace are gone after it. The tests
//! that end badly are `#[ignore]`d; each check runs one in a process of its
//! own (this test binary, filtered to it) and looks at what it printed and
//! left.

use giftdrop_domain::jobs::{JobPayload, SendEmail};
use giftdrop_domain::keys::Namespace;
use giftdrop_jobs::queues::JobQueues;

use crate::support::namespaces::{keys, redis_connection};
use crate::support::{
    fresh_database, fresh_namespace, leaves_work, redis_url, scalar, server_url, spawn_app,
};

/// Prints the test's world for the check that runs it.
fn announce(database: &str, namespace: &str) {
    println!("WORLD {database} {namespace}");
}

/// Queues an email job in `namespace`, with no worker to run it.
async fn queue_email(namespace: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let redis = redis::aio::ConnectionManager::new(client)
        .await
        .expect("redis reachable");
    let email = SendEmail {
        to: "nobody@example.com".into(),
        subject: "left behind".into(),
        body: "No worker runs this.".into(),
        dedupe_key: "cleanup:left-behind".into(),
    };
    JobQueues::new(redis, &Namespace::new(namespace.to_owned()))
        .push(
            SendEmail::KIND,
            serde_json::to_value(email).expect("JSON"),
            None,
        )
        .await
        .expect("job queued");
}

#[tokio::test(crate = "crate::support::harness")]
#[ignore = "fails on purpose: run by a_test_that_leaves_a_job_fails_naming_it"]
async fn leaves_a_job_in_its_queue() {
    let (database, namespace) = (fresh_database().await, fresh_namespace());
    announce(&database, &namespace);
    queue_email(&namespace).await;
}

#[tokio::test(crate = "crate::support::harness")]
#[ignore = "run by a_test_that_says_it_leaves_a_job_passes"]
async fn leaves_a_job_and_says_so() {
    let (database, namespace) = (fresh_database().await, fresh_namespace());
    announce(&database, &namespace);
    leaves_work(&namespace, "no worker runs in this test");
    queue_email(&namespace).await;
}

#[tokio::test(crate = "crate::support::harness")]
#[ignore = "fails on purpose: run by a_panicking_test_leaves_nothing_behind"]
async fn panics_while_its_app_runs() {
    let app = spawn_app().await;
    announce(
        crate::support::database_name(&app.config),
        &app.config.redis_namespace,
    );
    app.register("ada@example.com", "Ada").await;
    panic!("on purpose");
}

/// Runs the ignored test `name` in a process of its own: whether it
/// passed, its output, and the database and namespace it announced.
async fn run_alone(name: &str) -> (bool, String, String, String) {
    let output = tokio::process::Command::new(std::env::current_exe().expect("this binary"))
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .await
        .expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let world = text
        .lines()
        .find_map(|line| line.split_once("WORLD ").map(|(_, world)| world))
        .unwrap_or_else(|| panic!("{name} announced no world:\n{text}"));
    let (database, namespace) = world.split_once(' ').expect("database and namespace");
    (
        output.status.success(),
        text.clone(),
        database.to_owned(),
        namespace.to_owned(),
    )
}

/// Asserts that `database` and every key of `namespace` are gone.
async fn assert_gone(database: &str, namespace: &str) {
    let admin = sea_orm::Database::connect(format!("{}/postgres", server_url()))
        .await
        .expect("postgres reachable");
    let sql = format!("SELECT count(*) FROM pg_database WHERE datname = '{database}'");
    assert_eq!(scalar(&admin, &sql).await, 0, "{database} was dropped");
    let mut redis = redis_connection().await.expect("redis reachable");
    let keys = keys(&mut redis, namespace).await.expect("SCAN");
    assert!(keys.is_empty(), "keys of {namespace} left: {keys:?}");
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_test_that_leaves_a_job_fails_naming_it() {
    let (passed, output, database, namespace) =
        run_alone("cleanup::leaves_a_job_in_its_queue").await;
    assert!(!passed, "a test that left a job passed:\n{output}");
    assert!(
        output.contains("the test's teardown found")
            && output.contains(&format!("{namespace}jobs:send_email: job"))
            && output.contains("left behind"),
        "the failure names the job:\n{output}"
    );
    assert_gone(&database, &namespace).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_test_that_says_it_leaves_a_job_passes() {
    let (passed, output, database, namespace) =
        run_alone("cleanup::leaves_a_job_and_says_so").await;
    assert!(passed, "{output}");
    assert_gone(&database, &namespace).await;
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_panicking_test_leaves_nothing_behind() {
    let (passed, output, database, namespace) =
        run_alone("cleanup::panics_while_its_app_runs").await;
    assert!(!passed && output.contains("on purpose"), "{output}");
    assert_gone(&database, &namespace).await;
}
