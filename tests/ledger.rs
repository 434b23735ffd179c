//! The ledger at the domain level: balanced postings, insufficient funds,
//! and the database's own guard rails.

use giftdrop_domain::idempotency;
use giftdrop_domain::ledger::{
    self, Account, EntryKind, Leg, PlatformAccount, Transfer, WalletOwner,
};
use giftdrop_domain::money::Amount;
use giftdrop_domain::{DomainError, RequestMeta};
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::support::{scalar, spawn_app};

fn meta() -> RequestMeta {
    RequestMeta {
        correlation_id: "ledger-test".into(),
    }
}

fn amount(minor: i64) -> Amount {
    Amount::new(minor).expect("non-negative")
}

/// A new user wallet holding `balance`, funded by an ADJUSTMENT.
async fn funded_wallet(db: &DatabaseConnection, balance: i64) -> Uuid {
    let wallet = ledger::wallet_of(db, WalletOwner::User(Uuid::new_v4()))
        .await
        .expect("wallet");
    if balance == 0 {
        return wallet.id;
    }
    let txn = db.begin().await.expect("begin");
    // Domain level: no cache or relay to tell after the commit.
    let _seeded = ledger::post(
        &txn,
        &meta(),
        Transfer {
            kind: EntryKind::Adjustment,
            reference: "seed",
            legs: vec![
                Leg::debit(
                    Account::Platform(PlatformAccount::ProviderClearing),
                    amount(balance),
                ),
                Leg::credit(Account::Wallet(wallet.id), amount(balance)),
            ],
        },
    )
    .await
    .expect("seeded");
    txn.commit().await.expect("commit");
    wallet.id
}

async fn move_money(
    db: &DatabaseConnection,
    from: Uuid,
    to: Uuid,
    minor: i64,
) -> Result<ledger::Posted, DomainError> {
    let txn = db.begin().await.expect("begin");
    let posted = ledger::post(
        &txn,
        &meta(),
        Transfer {
            kind: EntryKind::Adjustment,
            reference: "move",
            legs: vec![
                Leg::debit(Account::Wallet(from), amount(minor)),
                Leg::credit(Account::Wallet(to), amount(minor)),
            ],
        },
    )
    .await?;
    txn.commit().await.expect("commit");
    Ok(posted)
}

async fn balance(db: &DatabaseConnection, wallet: Uuid) -> i64 {
    ledger::wallet_balance(db, wallet)
        .await
        .expect("read")
        .expect("a wallet")
        .minor()
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_transfer_moves_money_and_records_the_balance_after() {
    let app = spawn_app().await;
    let db = &app.db;
    let (a, b) = (funded_wallet(db, 10_000).await, funded_wallet(db, 0).await);
    let posted = move_money(db, a, b, 2_500).await.expect("posted");
    let mut expected = vec![(a, amount(7_500)), (b, amount(2_500))];
    expected.sort();
    let touched: Vec<(Uuid, Amount)> = posted.wallets.iter().map(|w| (w.id, w.balance)).collect();
    assert_eq!(touched, expected);
    assert_eq!((balance(db, a).await, balance(db, b).await), (7_500, 2_500));
    assert_eq!(
        scalar(db, &format!("SELECT balance_after FROM ledger.entries WHERE account_id = '{b}' ORDER BY id DESC LIMIT 1")).await,
        2_500
    );
    // Every wallet equals the sum of its entries; all accounts sum to zero.
    assert_eq!(
        scalar(db, "SELECT count(*) FROM ledger.accounts a WHERE a.kind = 'USER' AND a.balance <> \
            (SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0) FROM ledger.entries e WHERE e.account_id = a.id)").await,
        0
    );
    assert_eq!(ledger::total(db).await.expect("total"), 0);
}

#[tokio::test(crate = "crate::support::harness")]
async fn a_debit_beyond_the_balance_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let db = &app.db;
    let (a, b) = (funded_wallet(db, 1_000).await, funded_wallet(db, 0).await);
    let entries = scalar(db, "SELECT count(*) FROM ledger.entries").await;
    match move_money(db, a, b, 1_001).await {
        Err(DomainError::InsufficientFunds {
            required,
            available,
        }) => assert_eq!((required, available), (amount(1_001), amount(1_000))),
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    assert_eq!((balance(db, a).await, balance(db, b).await), (1_000, 0));
    assert_eq!(
        scalar(db, "SELECT count(*) FROM ledger.entries").await,
        entries
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_database_refuses_unbalanced_transfers_edits_and_overdrafts() {
    let app = spawn_app().await;
    let db = &app.db;
    let wallet = funded_wallet(db, 500).await;

    // One lonely entry, or entries that do not sum to zero: refused by the
    // statement that inserts them.
    for legs in [
        format!("('{wallet}', 'CREDIT', 10)"),
        format!(
            "('{wallet}', 'CREDIT', 10), ('{}', 'DEBIT', 9)",
            PlatformAccount::ProviderClearing.id()
        ),
    ] {
        let transfer = Uuid::new_v4();
        let refused = db
            .execute_unprepared(&format!(
                "WITH t AS (INSERT INTO ledger.transfers (id, kind, reference, correlation_id) VALUES ('{transfer}', 'ADJUSTMENT', 'x', 'x')) \
                 INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, reference) \
                 SELECT '{transfer}', x.account::uuid, 'ADJUSTMENT', x.direction, x.amount, 'x' FROM (VALUES {legs}) AS x (account, direction, amount)"
            ))
            .await
            .expect_err("an unbalanced transfer must not be written");
        assert!(refused.to_string().contains("unbalanced"), "{refused}");
    }

    // Entries are append-only; wallets never go negative.
    for sql in [
        "UPDATE ledger.entries SET amount = amount + 1".to_owned(),
        "DELETE FROM ledger.entries".to_owned(),
        format!("UPDATE ledger.accounts SET balance = -1 WHERE id = '{wallet}'"),
    ] {
        assert!(
            db.execute_unprepared(&sql).await.is_err(),
            "{sql} was allowed"
        );
    }
    assert_eq!(balance(db, wallet).await, 500);
    assert_eq!(ledger::total(db).await.expect("total"), 0);
}

/// How a bank-test transfer is posted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Posting {
    /// Through `ledger::post`.
    Ledger,
    /// A deliberately broken read-modify-write, to prove the test catches it.
    Racy,
}

/// A read-modify-write transfer without row locks: reads both balances,
/// then writes the values it computed. Its entries balance, so only the
/// invariant checks can catch the lost updates.
async fn racy_post(
    txn: &sea_orm::DatabaseTransaction,
    key: &str,
    from: Uuid,
    to: Uuid,
    minor: i64,
) -> Result<Uuid, DomainError> {
    let from_balance = ledger::wallet_balance(txn, from).await?.expect("wallet");
    if from_balance.minor() < minor {
        return Err(DomainError::InsufficientFunds {
            required: amount(minor),
            available: from_balance,
        });
    }
    let to_balance = ledger::wallet_balance(txn, to).await?.expect("wallet");
    tokio::task::yield_now().await;
    let transfer = Uuid::now_v7();
    txn.execute_unprepared(&format!(
        "UPDATE ledger.accounts SET balance = {} WHERE id = '{from}';
         UPDATE ledger.accounts SET balance = {} WHERE id = '{to}';
         INSERT INTO ledger.transfers (id, kind, reference, correlation_id) VALUES ('{transfer}', 'ADJUSTMENT', '{key}', 'racy');
         INSERT INTO ledger.entries (transfer_id, account_id, kind, direction, amount, reference) VALUES
           ('{transfer}', '{from}', 'ADJUSTMENT', 'DEBIT', {minor}, '{key}'),
           ('{transfer}', '{to}', 'ADJUSTMENT', 'CREDIT', {minor}, '{key}');",
        from_balance.minor() - minor,
        to_balance.minor() + minor,
    ))
    .await?;
    Ok(transfer)
}

/// One client transfer under an idempotency key.
async fn transfer_once(
    db: &DatabaseConnection,
    posting: Posting,
    caller: Uuid,
    key: &str,
    from: Uuid,
    to: Uuid,
    minor: i64,
) -> Result<Uuid, DomainError> {
    let scope = idempotency::Scope {
        caller,
        operation: "bankTransfer",
        key,
    };
    idempotency::run(db, scope, &(from, to, minor), || async {
        let txn = db.begin().await?;
        let id = match posting {
            Posting::Ledger => {
                ledger::post(
                    &txn,
                    &meta(),
                    Transfer {
                        kind: EntryKind::Adjustment,
                        reference: key,
                        legs: vec![
                            Leg::debit(Account::Wallet(from), amount(minor)),
                            Leg::credit(Account::Wallet(to), amount(minor)),
                        ],
                    },
                )
                .await?
                .transfer_id
            }
            Posting::Racy => racy_post(&txn, key, from, to, minor).await?,
        };
        Ok((txn, id))
    })
    .await
}

/// What the auditor saw in one consistent snapshot.
async fn audit(db: &DatabaseConnection) -> Vec<String> {
    let txn = db
        .begin_with_config(
            Some(sea_orm::IsolationLevel::RepeatableRead),
            Some(sea_orm::AccessMode::ReadOnly),
        )
        .await
        .expect("begin");
    let mut problems = Vec::new();
    let total = ledger::total(&txn).await.expect("total");
    if total != 0 {
        problems.push(format!("accounts sum to {total}"));
    }
    for (what, sql) in [
        (
            "negative wallets",
            "SELECT count(*) FROM ledger.accounts WHERE balance < 0",
        ),
        (
            "wallets differing from their entries",
            "SELECT count(*) FROM ledger.accounts a WHERE a.kind = 'USER' AND a.balance <> \
             (SELECT coalesce(sum(CASE direction WHEN 'CREDIT' THEN amount ELSE -amount END), 0) FROM ledger.entries e WHERE e.account_id = a.id)",
        ),
        (
            "keys with several transfers",
            "SELECT count(*) FROM (SELECT reference FROM ledger.transfers WHERE reference LIKE 'k-%' GROUP BY reference HAVING count(*) > 1) d",
        ),
    ] {
        let row = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .expect("query")
            .expect("row");
        let count: i64 = row.try_get_by_index(0).expect("count");
        if count != 0 {
            problems.push(format!("{count} {what}"));
        }
    }
    txn.commit().await.expect("commit");
    problems
}

/// Runs the bank: 16 clients x 40 transfers between 100 wallets, each sent
/// twice at once under its key (a client retrying), while an auditor checks
/// the books over and over. Returns every problem seen and the audit count.
async fn run_bank(db: &DatabaseConnection, posting: Posting) -> (Vec<String>, usize) {
    use rand::Rng;
    let mut wallets = Vec::new();
    for _ in 0..100 {
        wallets.push(funded_wallet(db, 1_000).await);
    }
    let wallets = std::sync::Arc::new(wallets);
    let done = tokio_util::sync::CancellationToken::new();
    let auditor = {
        let (db, done) = (db.clone(), done.clone());
        tokio::spawn(async move {
            let (mut problems, mut audits) = (Vec::new(), 0);
            while !done.is_cancelled() {
                problems.extend(audit(&db).await);
                audits += 1;
            }
            (problems, audits)
        })
    };
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..16 {
        let (db, wallets) = (db.clone(), wallets.clone());
        clients.spawn(async move {
            let caller = Uuid::new_v4();
            for n in 0..40 {
                let (from, to, minor) = {
                    let mut rng = rand::rng();
                    let from = rng.random_range(0..wallets.len());
                    let to = (from + rng.random_range(1..wallets.len())) % wallets.len();
                    (wallets[from], wallets[to], rng.random_range(1..=400))
                };
                let key = format!("k-{client}-{n}");
                let attempt = || async {
                    loop {
                        match transfer_once(&db, posting, caller, &key, from, to, minor).await {
                            Err(DomainError::IdempotencyKeyInUse) => tokio::task::yield_now().await,
                            other => return other,
                        }
                    }
                };
                let (first, second) = tokio::join!(attempt(), attempt());
                match (&first, &second) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "a retry must return the same transfer"),
                    (
                        Err(DomainError::InsufficientFunds { .. }),
                        Err(DomainError::InsufficientFunds { .. }),
                    ) => {}
                    other => panic!("unexpected outcomes {other:?}"),
                }
            }
        });
    }
    while let Some(client) = clients.join_next().await {
        client.expect("client finished");
    }
    done.cancel();
    let (mut problems, audits) = auditor.await.expect("auditor");
    problems.extend(audit(db).await);
    (problems, audits)
}

#[tokio::test(
    flavor = "multi_thread",
    worker_threads = 4,
    crate = "crate::support::harness"
)]
async fn the_bank_stays_balanced_under_concurrent_retried_transfers() {
    let app = spawn_app().await;
    let (problems, audits) = run_bank(&app.db, Posting::Ledger).await;
    assert!(audits >= 10, "only {audits} audits ran during the bank");
    assert!(problems.is_empty(), "the books broke: {problems:?}");
    // Every key made at most one transfer, and every transfer has its key.
    assert!(
        scalar(
            &app.db,
            "SELECT count(*) FROM ledger.transfers WHERE reference LIKE 'k-%'"
        )
        .await
            > 0
    );
}

#[tokio::test(
    flavor = "multi_thread",
    worker_threads = 4,
    crate = "crate::support::harness"
)]
async fn the_bank_test_catches_a_racy_read_modify_write() {
    let app = spawn_app().await;
    let (problems, _) = run_bank(&app.db, Posting::Racy).await;
    assert!(
        !problems.is_empty(),
        "a lost-update implementation passed the bank test: the test cannot fail"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn idempotency_keys_replay_outcomes_and_refuse_changed_input() {
    let app = spawn_app().await;
    let db = &app.db;
    let caller = Uuid::new_v4();
    let (a, b) = (funded_wallet(db, 100).await, funded_wallet(db, 0).await);

    let first = transfer_once(db, Posting::Ledger, caller, "k-same", a, b, 60)
        .await
        .expect("posted");
    let again = transfer_once(db, Posting::Ledger, caller, "k-same", a, b, 60)
        .await
        .expect("replayed");
    assert_eq!(first, again);
    assert_eq!(balance(db, a).await, 40, "a replay moves no money");
    assert!(matches!(
        transfer_once(db, Posting::Ledger, caller, "k-same", a, b, 61).await,
        Err(DomainError::IdempotencyKeyReused)
    ));
    // Another caller's key of the same text is another key.
    transfer_once(db, Posting::Ledger, Uuid::new_v4(), "k-same", a, b, 10)
        .await
        .expect("posted");
    assert_eq!(balance(db, a).await, 30);

    // A client error is stored: funding the wallet later does not change it.
    let short = transfer_once(db, Posting::Ledger, caller, "k-short", a, b, 500).await;
    assert!(
        matches!(short, Err(DomainError::InsufficientFunds { .. })),
        "{short:?}"
    );
    let top = funded_wallet(db, 1_000).await;
    let _funded = move_money(db, top, a, 1_000).await.expect("funded");
    let replay = transfer_once(db, Posting::Ledger, caller, "k-short", a, b, 500).await;
    assert!(
        matches!(replay, Err(DomainError::InsufficientFunds { .. })),
        "{replay:?}"
    );

    // A validation failure is not stored: the retry does the work.
    let scope = || idempotency::Scope {
        caller,
        operation: "bankTransfer",
        key: "k-invalid",
    };
    let refused: Result<Uuid, _> = idempotency::run(db, scope(), &1, || async {
        Err(DomainError::bad_input(
            "input.amount",
            "must be greater than zero",
        ))
    })
    .await;
    assert!(matches!(refused, Err(DomainError::BadInput { .. })));
    let stored = scalar(
        db,
        "SELECT count(*) FROM ledger.idempotency_keys WHERE key = 'k-invalid'",
    )
    .await;
    assert_eq!(stored, 0, "a validation failure must not be stored");
    assert_eq!(
        idempotency::sweep(db, 100).await.expect("sweep"),
        0,
        "nothing has expired yet"
    );
}

#[tokio::test(crate = "crate::support::harness")]
async fn the_worker_sweeps_expired_idempotency_keys_and_keeps_live_ones() {
    let app = crate::support::AppOptions::new()
        .await
        .config(|c| c.idempotency_sweep_secs = 1)
        .spawn()
        .await;
    let db = &app.db;
    let caller = Uuid::new_v4();
    for (key, expires) in [
        ("old", "now() - interval '1 second'"),
        ("live", "now() + interval '1 day'"),
    ] {
        db.execute_unprepared(&format!(
            "INSERT INTO ledger.idempotency_keys (caller_id, operation, key, request_hash, state, outcome, expires_at) \
             VALUES ('{caller}', 'test', '{key}', '\\x00', 'DONE', '{{}}', {expires})"
        ))
        .await
        .expect("key stored");
    }
    crate::support::eventually("the expired key swept", || async {
        scalar(
            db,
            "SELECT count(*) FROM ledger.idempotency_keys WHERE key = 'old'",
        )
        .await
            == 0
    })
    .await;
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM ledger.idempotency_keys WHERE key = 'live'"
        )
        .await,
        1
    );
    // The sweep itself, called directly, deletes in batches and reports.
    db.execute_unprepared(&format!(
        "INSERT INTO ledger.idempotency_keys (caller_id, operation, key, request_hash, state, outcome, expires_at) \
         SELECT '{caller}', 'bulk', 'k' || i, '\\x00', 'DONE', '{{}}', now() - interval '1 hour' FROM generate_series(1, 2500) i"
    ))
    .await
    .expect("keys stored");
    let swept = giftdrop_jobs::sweep::sweep_idempotency_keys(db)
        .await
        .expect("swept");
    // The worker may have swept some of them first.
    assert!(swept <= 2500, "{swept}");
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM ledger.idempotency_keys WHERE operation = 'bulk'"
        )
        .await,
        0
    );
}
