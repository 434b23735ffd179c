//! Wallets: who owns them, how they read, and the `walletUpdated`
//! message a posting announces each touched wallet with.

use giftdrop_entities::ledger::accounts;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DerivePartialModel, EntityTrait,
    FromQueryResult, QueryFilter, QueryResult, QuerySelect,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::bug;
use crate::error::{DomainError, DomainResult};
use crate::memo::Remembered;
use crate::money::Amount;

/// Who a wallet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WalletOwner {
    /// A person.
    User(Uuid),
    /// A merchant.
    Merchant(Uuid),
}

impl WalletOwner {
    pub(super) fn kind(self) -> WalletKind {
        match self {
            Self::User(_) => WalletKind::User,
            Self::Merchant(_) => WalletKind::Merchant,
        }
    }

    pub(super) fn id(self) -> Uuid {
        match self {
            Self::User(id) | Self::Merchant(id) => id,
        }
    }
}

/// `WalletKind` of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WalletKind {
    /// A person's wallet.
    User,
    /// A merchant's wallet.
    Merchant,
}

impl WalletKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Merchant => "MERCHANT",
        }
    }
}

/// The first word of every wallet topic.
const TOPIC: &str = "wallet";

/// The fields of [`WalletView`], each read from the `ledger.accounts`
/// column of the same name.
const FIELDS: [&str; 5] = ["id", "kind", "owner_id", "balance", "version"];

/// The pub/sub topic of the changes of `owner`'s wallet; each message is
/// its [`WalletView`] right after a posting.
pub fn wallet_topic(owner: WalletOwner) -> String {
    format!("{TOPIC}:{}:{}", owner.kind().as_str(), owner.id())
}

/// The columns of a wallet row, for [`wallet_view`], with `prefix` (a
/// table alias and its dot, or nothing).
pub(super) fn columns(prefix: &str) -> String {
    FIELDS.map(|field| format!("{prefix}{field}")).join(", ")
}

/// The `walletUpdated` message of the wallet rows of `row` (a part of the
/// posting's statement with the wallets' new rows), as the SQL of two
/// outbox columns: its topic, [`wallet_topic`] of the owner, and its
/// payload, the [`WalletView`]'s JSON. The one place the message is built:
/// a posting's new balances are known only inside its statement.
pub(super) fn message(row: &str) -> String {
    let fields = FIELDS
        .map(|field| format!("'{field}', {row}.{field}"))
        .join(", ");
    format!("'{TOPIC}:' || {row}.kind || ':' || {row}.owner_id, jsonb_build_object({fields})")
}

/// The columns of a wallet row ([`FIELDS`]).
#[derive(DerivePartialModel)]
#[sea_orm(entity = "accounts::Entity")]
struct WalletRow {
    id: Uuid,
    kind: accounts::Kind,
    owner_id: Option<Uuid>,
    balance: i64,
    version: i64,
}

impl TryFrom<WalletRow> for WalletView {
    type Error = DomainError;

    fn try_from(row: WalletRow) -> DomainResult<Self> {
        Ok(WalletView {
            id: row.id,
            kind: match row.kind {
                accounts::Kind::User => WalletKind::User,
                accounts::Kind::Merchant => WalletKind::Merchant,
                _ => return Err(bug("a platform account read as a wallet")),
            },
            owner_id: row
                .owner_id
                .ok_or_else(|| bug("a wallet without an owner"))?,
            balance: balance(row.balance)?,
            version: row.version,
        })
    }
}

/// A wallet balance, in minor units.
pub(super) fn balance(minor: i64) -> DomainResult<Amount> {
    Amount::new(minor).map_err(|_| bug("a negative wallet balance"))
}

/// A wallet row ([`columns`]) of a hand-written statement as the API
/// shows it.
pub(super) fn wallet_view(row: &QueryResult) -> DomainResult<WalletView> {
    WalletRow::from_query_result(row, "")?.try_into()
}

/// The wallet kinds of `ledger.accounts`.
pub(super) const WALLET_KINDS: [accounts::Kind; 2] =
    [accounts::Kind::User, accounts::Kind::Merchant];

impl From<WalletKind> for accounts::Kind {
    fn from(kind: WalletKind) -> Self {
        match kind {
            WalletKind::User => Self::User,
            WalletKind::Merchant => Self::Merchant,
        }
    }
}

/// A wallet's balance, `None` if the account is not a wallet.
pub async fn wallet_balance<C: ConnectionTrait>(
    conn: &C,
    account: Uuid,
) -> DomainResult<Option<Amount>> {
    let minor: Option<i64> = accounts::Entity::find_by_id(account)
        .select_only()
        .column(accounts::Column::Balance)
        .filter(accounts::Column::Kind.is_in(WALLET_KINDS))
        .into_tuple()
        .one(conn)
        .await?;
    minor.map(balance).transpose()
}

/// A wallet as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletView {
    /// The account id.
    pub id: Uuid,
    /// Person or merchant.
    pub kind: WalletKind,
    /// Who owns it.
    pub owner_id: Uuid,
    /// Spendable now.
    pub balance: Amount,
    /// Raised by every posting to the wallet: of two views, the one with
    /// the higher version is the newer.
    pub version: i64,
}

impl WalletView {
    /// Who owns the wallet.
    pub fn owner(&self) -> WalletOwner {
        match self.kind {
            WalletKind::User => WalletOwner::User(self.owner_id),
            WalletKind::Merchant => WalletOwner::Merchant(self.owner_id),
        }
    }
}

/// The wallet of `owner`, created (empty) on first use. Reading an existing
/// wallet is one SELECT: reads never write.
pub async fn wallet_of<C: ConnectionTrait>(
    conn: &C,
    owner: WalletOwner,
) -> DomainResult<WalletView> {
    if let Some(wallet) = find_wallet(conn, owner).await? {
        return Ok(wallet);
    }
    accounts::Entity::insert(accounts::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(owner.kind().into()),
        owner_id: Set(Some(owner.id())),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([accounts::Column::Kind, accounts::Column::OwnerId])
            .target_and_where(accounts::Column::OwnerId.is_not_null())
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    find_wallet(conn, owner)
        .await?
        .ok_or_else(|| bug("a wallet vanished after it was created"))
}

/// `owner`'s wallet, if it has one.
async fn find_wallet<C: ConnectionTrait>(
    conn: &C,
    owner: WalletOwner,
) -> DomainResult<Option<WalletView>> {
    accounts::Entity::find()
        .filter(accounts::Column::Kind.eq(accounts::Kind::from(owner.kind())))
        .filter(accounts::Column::OwnerId.eq(owner.id()))
        .into_partial_model::<WalletRow>()
        .one(conn)
        .await?
        .map(WalletView::try_from)
        .transpose()
}

/// Wallet ids by owner, remembered by the process: a wallet's id never
/// changes once its row is committed, so a posting need not look it up
/// each time.
#[derive(Clone, Debug)]
pub struct WalletIds(Remembered<WalletOwner, Uuid>);

impl Default for WalletIds {
    fn default() -> Self {
        Self(Remembered::new(100_000))
    }
}

impl WalletIds {
    /// The id of `owner`'s wallet, created (in `conn`'s transaction) if
    /// it has none. Only a wallet found already committed is remembered:
    /// one created here may yet be rolled back.
    pub async fn of<C: ConnectionTrait>(&self, conn: &C, owner: WalletOwner) -> DomainResult<Uuid> {
        if let Some(id) = self.0.get(&owner) {
            return Ok(id);
        }
        let Some(wallet) = find_wallet(conn, owner).await? else {
            return Ok(wallet_of(conn, owner).await?.id);
        };
        self.0.insert(owner, wallet.id);
        Ok(wallet.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_has_every_field_of_a_wallet_view_and_its_topic() {
        let view = WalletView {
            id: Uuid::now_v7(),
            kind: WalletKind::Merchant,
            owner_id: Uuid::now_v7(),
            balance: Amount::ZERO,
            version: 1,
        };
        let json = serde_json::to_value(&view).expect("json");
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut fields = FIELDS.to_vec();
        fields.sort_unstable();
        assert_eq!(keys, fields);
        assert_eq!(json["kind"], WalletKind::Merchant.as_str());
        assert_eq!(
            wallet_topic(view.owner()),
            format!("{TOPIC}:MERCHANT:{}", view.owner_id)
        );
        assert_eq!(
            message("w"),
            "'wallet:' || w.kind || ':' || w.owner_id, jsonb_build_object('id', w.id, \
             'kind', w.kind, 'owner_id', w.owner_id, 'balance', w.balance, 'version', w.version)"
        );
    }
}
