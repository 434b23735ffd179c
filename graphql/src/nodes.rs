//! The object types that refer to one another: a card to its escrow, an
//! escrow to its card and event, an event to its winners and prizes, a
//! winner to its card and event. Each is declared here, beside the others,
//! and its fields are resolved in its own module (`card`, `escrow`,
//! `event`, `participant`), which depends on this one: so the modules
//! depend on each other one way only.

use async_graphql::{Context, Result};
use giftdrop_domain::giftcard::cards::CardView;
use giftdrop_domain::giftcard::escrow::EscrowView;
use giftdrop_domain::giveaway::events::EventView;
use giftdrop_domain::giveaway::participants::ParticipantView;
use giftdrop_domain::giveaway::prizes::PrizeView;
use giftdrop_domain::giveaway::winners::WinnerView;
use uuid::Uuid;

use crate::auth::reach;
use crate::loaders::{CardOfEscrowKey, loaded};

/// A gift card, as a viewer who may see it sees it (fields: `card`).
#[derive(Clone)]
pub struct Card {
    /// The card.
    pub(crate) view: CardView,
    /// True when the viewer may see its code, pin and owner.
    pub(crate) secrets_visible: bool,
}

impl Card {
    /// `view` for the request's viewer, or `None` if they may not see it.
    pub async fn seen(ctx: &Context<'_>, view: CardView) -> Result<Option<Self>> {
        let reach = reach(ctx).await?;
        Ok(view.visible_to(reach).then(|| Self {
            secrets_visible: view.secrets_visible_to(reach),
            view,
        }))
    }

    /// The card backing escrow `escrow_id`, if issued and visible.
    pub async fn of_escrow(ctx: &Context<'_>, escrow_id: Uuid) -> Result<Option<Self>> {
        match loaded(ctx, CardOfEscrowKey(escrow_id)).await? {
            Some(view) => Self::seen(ctx, view).await,
            None => Ok(None),
        }
    }

    /// `view` as its owner sees it: code, pin and all.
    pub fn owned(view: CardView) -> Self {
        Self {
            view,
            secrets_visible: true,
        }
    }
}

/// An escrow (fields: `escrow`).
#[derive(Clone)]
pub struct Escrow(pub EscrowView);

/// A giveaway event, as a viewer who may see it sees it (fields: `event`).
#[derive(Clone)]
pub struct Event(pub EventView);

/// A prize of an event (fields: `event`).
#[derive(Clone)]
pub struct Prize(pub PrizeView);

/// A participant of an event (fields: `participant`).
#[derive(Clone)]
pub struct Participant(pub ParticipantView);

/// A winner of an event (fields: `participant`).
#[derive(Clone)]
pub struct Winner(pub WinnerView);
