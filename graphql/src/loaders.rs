//! Batched lookups of the rows nested fields point at (a card's product,
//! escrow and owner, an escrow's card, a product's or escrow's merchant, a
//! merchant's branches, an event's prizes and winners), so a list costs one query per kind of row, not one
//! per item.
//!
//! One loader per process, without a cache: it only batches the keys asked
//! for at the same moment (by one request's list, or by concurrent
//! requests), so nothing it returns can be stale.

use std::collections::HashMap;

use async_graphql::Context;
use async_graphql::dataloader::{DataLoader, Loader};
use giftdrop_domain::giftcard::cards::{self, CardView};
use giftdrop_domain::giftcard::escrow::{self, EscrowView};
use giftdrop_domain::giftcard::merchants::{self, BranchView, MerchantView};
use giftdrop_domain::giftcard::products::{self, ProductView};
use giftdrop_domain::giveaway::events::{self, EventView};
use giftdrop_domain::giveaway::participants::{self, ParticipantView};
use giftdrop_domain::giveaway::prizes::{self, PrizeView};
use giftdrop_domain::giveaway::winners::{self, WinnerView};
use giftdrop_domain::identity::{self, UserView};
use giftdrop_domain::{DomainError, DomainResult, Services};
use uuid::Uuid;

use crate::error::{Gql, to_graphql};

/// A merchant id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MerchantKey(pub Uuid);

/// A card product id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProductKey(pub Uuid);

/// An escrow id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EscrowKey(pub Uuid);

/// A user id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);

/// The card backed by an escrow, by the escrow's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CardOfEscrowKey(pub Uuid);

/// The branches of a merchant, by the merchant's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BranchesKey(pub Uuid);

/// An event id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventKey(pub Uuid);

/// A prize id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrizeKey(pub Uuid);

/// A participant id to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParticipantKey(pub Uuid);

/// The prizes of an event, by the event's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrizesKey(pub Uuid);

/// The winners of an event, by the event's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WinnersKey(pub Uuid);

/// Loads rows by id in batches.
pub struct Records {
    services: Services,
}

/// The process's batching loader.
pub type RecordLoader = DataLoader<Records>;

/// A loader over the services' database.
pub fn loader(services: Services) -> RecordLoader {
    DataLoader::new(Records { services }, tokio::spawn)
}

fn by_id<K, V>(
    found: DomainResult<Vec<V>>,
    key: impl Fn(Uuid) -> K,
    id: impl Fn(&V) -> Uuid,
) -> async_graphql::Result<HashMap<K, V>>
where
    K: std::hash::Hash + Eq,
{
    Ok(found
        .map_err(to_graphql)?
        .into_iter()
        .map(|v| (key(id(&v)), v))
        .collect())
}

fn ids<K: Copy>(keys: &[K], id: impl Fn(K) -> Uuid) -> Vec<Uuid> {
    keys.iter().map(|k| id(*k)).collect()
}

impl Loader<MerchantKey> for Records {
    type Value = MerchantView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MerchantKey],
    ) -> Result<HashMap<MerchantKey, MerchantView>, Self::Error> {
        let found = merchants::find_many(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, MerchantKey, |m| m.id)
    }
}

impl Loader<ProductKey> for Records {
    type Value = ProductView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ProductKey],
    ) -> Result<HashMap<ProductKey, ProductView>, Self::Error> {
        let found = products::find_many(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, ProductKey, |p| p.id)
    }
}

impl Loader<EscrowKey> for Records {
    type Value = EscrowView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[EscrowKey],
    ) -> Result<HashMap<EscrowKey, EscrowView>, Self::Error> {
        let found = escrow::find_many(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, EscrowKey, |e| e.id)
    }
}

impl Loader<UserKey> for Records {
    type Value = UserView;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, UserView>, Self::Error> {
        let found = identity::find_users(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, UserKey, |u| u.id)
    }
}

impl Loader<CardOfEscrowKey> for Records {
    type Value = CardView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[CardOfEscrowKey],
    ) -> Result<HashMap<CardOfEscrowKey, CardView>, Self::Error> {
        let found = cards::find_by_escrows(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, CardOfEscrowKey, |c| c.escrow_id)
    }
}

/// Groups `found` rows into one list per key asked for (empty when a key
/// has no rows), in the order found.
fn grouped<K, V>(
    keys: &[K],
    found: DomainResult<Vec<V>>,
    key_of: impl Fn(&V) -> K,
) -> async_graphql::Result<HashMap<K, Vec<V>>>
where
    K: std::hash::Hash + Eq + Copy,
{
    let mut lists: HashMap<K, Vec<V>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for row in found.map_err(to_graphql)? {
        lists.entry(key_of(&row)).or_default().push(row);
    }
    Ok(lists)
}

impl Loader<BranchesKey> for Records {
    type Value = Vec<BranchView>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[BranchesKey],
    ) -> Result<HashMap<BranchesKey, Vec<BranchView>>, Self::Error> {
        let found = merchants::branches(&self.services.db, &ids(keys, |k| k.0)).await;
        grouped(keys, found, |b| BranchesKey(b.merchant_id))
    }
}

impl Loader<EventKey> for Records {
    type Value = EventView;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EventKey]) -> Result<HashMap<EventKey, EventView>, Self::Error> {
        let found = events::find_many(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, EventKey, |e| e.id)
    }
}

impl Loader<PrizeKey> for Records {
    type Value = PrizeView;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[PrizeKey]) -> Result<HashMap<PrizeKey, PrizeView>, Self::Error> {
        let found = prizes::find_prizes(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, PrizeKey, |p| p.id)
    }
}

impl Loader<ParticipantKey> for Records {
    type Value = ParticipantView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ParticipantKey],
    ) -> Result<HashMap<ParticipantKey, ParticipantView>, Self::Error> {
        let found = participants::find_many(&self.services.db, &ids(keys, |k| k.0)).await;
        by_id(found, ParticipantKey, |p| p.id)
    }
}

impl Loader<PrizesKey> for Records {
    type Value = Vec<PrizeView>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PrizesKey],
    ) -> Result<HashMap<PrizesKey, Vec<PrizeView>>, Self::Error> {
        let found = prizes::prizes_of(&self.services.db, &ids(keys, |k| k.0)).await;
        grouped(keys, found, |p| PrizesKey(p.event_id))
    }
}

impl Loader<WinnersKey> for Records {
    type Value = Vec<WinnerView>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[WinnersKey],
    ) -> Result<HashMap<WinnersKey, Vec<WinnerView>>, Self::Error> {
        let found = winners::winners_of(&self.services.db, &ids(keys, |k| k.0)).await;
        grouped(keys, found, |w| WinnersKey(w.event_id))
    }
}

/// The value behind `key`, if there is one.
pub async fn loaded<K>(
    ctx: &Context<'_>,
    key: K,
) -> async_graphql::Result<Option<<Records as Loader<K>>::Value>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Records: Loader<K, Error = async_graphql::Error>,
{
    let loader = ctx
        .data::<RecordLoader>()
        .map_err(|_| DomainError::Internal(anyhow::anyhow!("the record loader is missing")))
        .gql()?;
    loader.load_one(key).await
}

/// The row behind `key`, which a visible row refers to (so a missing one
/// is a bug: `INTERNAL`).
pub async fn referenced<K>(
    ctx: &Context<'_>,
    key: K,
) -> async_graphql::Result<<Records as Loader<K>>::Value>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + std::fmt::Debug + 'static,
    Records: Loader<K, Error = async_graphql::Error>,
{
    loaded(ctx, key.clone())
        .await?
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("{key:?} is missing")))
        .gql()
}
