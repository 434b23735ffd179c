//! Gift cards: buying, redeeming at the till, reading (FLOWS.md §4).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result};
use chrono::{DateTime, Utc};
use giftdrop_domain::giftcard::merchants;
use giftdrop_domain::giftcard::redeem::{self, Redeem, RedemptionView};
use giftdrop_domain::giftcard::{cards, purchase};
use giftdrop_domain::{DomainError, idempotency};
use uuid::Uuid;

use crate::auth::{request, require_viewer, services};
use crate::error::Gql;
use crate::identity::User;
use crate::ids;
use crate::loaders::{EscrowKey, ProductKey, UserKey, loaded, referenced};
use crate::merchant::{Branch, CardProduct};
use crate::money::Money;
use crate::nodes::{Card, Escrow};

/// `CardStatus`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(
    name = "CardStatus",
    remote = "giftdrop_domain::giftcard::cards::CardStatus"
)]
pub enum CardStatusGql {
    /// Can be redeemed.
    Active,
    /// Redeemed at a branch.
    Redeemed,
    /// Past its expiry; refunded to the funder.
    Expired,
    /// Voided; refunded to the funder.
    Void,
}

fn missing(what: &str, id: Uuid) -> async_graphql::Error {
    crate::error::to_graphql(DomainError::Internal(anyhow::anyhow!(
        "{what} {id} is missing"
    )))
}

/// A gift card instance. Visible only to its owner, staff of its merchant
/// and admins; code and pin only to its owner and admins.
#[Object]
impl Card {
    async fn id(&self) -> ID {
        ids::of(self.view.id)
    }

    async fn product(&self, ctx: &Context<'_>) -> Result<CardProduct> {
        Ok(CardProduct(
            referenced(ctx, ProductKey(self.view.product_id)).await?,
        ))
    }

    async fn face_value(&self) -> Money {
        self.view.face_value.into()
    }

    async fn code(&self) -> Option<String> {
        self.secrets_visible.then(|| self.view.display_code())
    }

    async fn pin(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if !self.secrets_visible {
            return Ok(None);
        }
        Ok(self.view.pin(&services(ctx)?.card_secrets))
    }

    async fn status(&self) -> CardStatusGql {
        self.view.status.into()
    }

    /// Shown to the owner and admins.
    async fn owner(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if !self.secrets_visible {
            return Ok(None);
        }
        let found = loaded(ctx, UserKey(self.view.owner_id)).await?;
        Ok(found.map(User::with_private_fields))
    }

    async fn escrow(&self, ctx: &Context<'_>) -> Result<Escrow> {
        Ok(Escrow(
            referenced(ctx, EscrowKey(self.view.escrow_id)).await?,
        ))
    }

    async fn issued_at(&self) -> DateTime<Utc> {
        self.view.issued_at
    }

    async fn expires_at(&self) -> DateTime<Utc> {
        self.view.expires_at
    }

    async fn redeemed_at(&self) -> Option<DateTime<Utc>> {
        self.view.redeemed_at
    }
}

/// A redemption at a branch.
pub struct Redemption(RedemptionView);

#[Object]
impl Redemption {
    async fn id(&self) -> ID {
        ids::of(self.0.id)
    }

    async fn card(&self, ctx: &Context<'_>) -> Result<Card> {
        let view = cards::find(&services(ctx)?.db, self.0.card_id)
            .await
            .gql()?
            .ok_or_else(|| missing("card", self.0.card_id))?;
        Card::seen(ctx, view)
            .await?
            .ok_or_else(|| missing("visible card", self.0.card_id))
    }

    async fn escrow(&self, ctx: &Context<'_>) -> Result<Escrow> {
        Ok(Escrow(referenced(ctx, EscrowKey(self.0.escrow_id)).await?))
    }

    async fn branch(&self, ctx: &Context<'_>) -> Result<Branch> {
        merchants::find_branch(&services(ctx)?.db, self.0.branch_id)
            .await
            .gql()?
            .map(Branch)
            .ok_or_else(|| missing("branch", self.0.branch_id))
    }

    async fn redeemed_at(&self) -> DateTime<Utc> {
        self.0.redeemed_at
    }
}

/// `purchaseCard` input.
#[derive(InputObject)]
pub struct PurchaseCardInput {
    product_id: ID,
    face_value: Money,
    idempotency_key: String,
}

/// `redeemCard` input.
#[derive(InputObject)]
pub struct RedeemCardInput {
    code: String,
    pin: String,
    branch_id: ID,
    idempotency_key: String,
}

/// Card queries.
#[derive(Default)]
pub struct CardQuery;

#[Object]
impl CardQuery {
    /// A card the viewer owns, or of a merchant they are staff of (admins:
    /// any); null otherwise.
    async fn card(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Card>> {
        require_viewer(ctx)?;
        let id = ids::parse(&id, "id").gql()?;
        match cards::find(&services(ctx)?.db, id).await.gql()? {
            Some(view) => Card::seen(ctx, view).await,
            None => Ok(None),
        }
    }

    /// Cards owned by the viewer, newest first.
    async fn my_cards(&self, ctx: &Context<'_>) -> Result<Vec<Card>> {
        let viewer = require_viewer(ctx)?;
        let owned = cards::owned_by(&services(ctx)?.db, viewer.user_id)
            .await
            .gql()?;
        Ok(owned.into_iter().map(Card::owned).collect())
    }
}

/// Card mutations.
#[derive(Default)]
pub struct CardMutation;

#[Object]
impl CardMutation {
    async fn purchase_card(&self, ctx: &Context<'_>, input: PurchaseCardInput) -> Result<Card> {
        let viewer = require_viewer(ctx)?;
        let product_id = ids::parse(&input.product_id, "input.productId").gql()?;
        let face_value = input.face_value.positive("input.faceValue").gql()?;
        idempotency::validate_key(&input.idempotency_key, "input.idempotencyKey").gql()?;
        let view = purchase::purchase(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            product_id,
            face_value,
            &input.idempotency_key,
        )
        .await
        .gql()?;
        Ok(Card::owned(view))
    }

    async fn redeem_card(&self, ctx: &Context<'_>, input: RedeemCardInput) -> Result<Redemption> {
        let viewer = require_viewer(ctx)?;
        let branch_id = ids::parse(&input.branch_id, "input.branchId").gql()?;
        idempotency::validate_key(&input.idempotency_key, "input.idempotencyKey").gql()?;
        let view = redeem::redeem(
            services(ctx)?,
            &request(ctx)?.meta,
            viewer,
            Redeem {
                code: input.code,
                pin: input.pin,
                branch_id,
            },
            &input.idempotency_key,
        )
        .await
        .gql()?;
        Ok(Redemption(view))
    }
}
