//! Queries whose whole answer is a function of the viewer and of the
//! `version`s of the events they read, so that an answer can be kept and
//! served again while those versions stand (the server's page cache).
//! The platform's settings (`platform { currency }`) are fixed for the
//! life of the process, so a query that reads only them reads no version.
//!
//! An event's `version` rises in the transaction of every change to its
//! row, its prizes or its winners (`giveaway::events::changed`): a join, an
//! award, a disqualification, a status change, an edit of a draft. A query
//! qualifies when its operation reads only `event(id:)` (or the platform's
//! settings) at the root, and below it only fields that come from those
//! rows or from rows that never change once written (a user's name, a
//! product's name, a winner's sequence). Anything else (`myParticipation`, a winner's `card`, a
//! participant's `status`, which verification changes without touching the
//! event, the host's `roles`, a product's `active`) disqualifies the query,
//! as do directives and fields with arguments. The allowlist is [`field`];
//! a field added there must keep that promise.

use async_graphql::Variables;
use async_graphql::parser::types::{
    ExecutableDocument, OperationType, Selection, SelectionSet, TypeCondition,
};
use async_graphql::{Name, Positioned};
use async_graphql_value::{ConstValue, Value};
use uuid::Uuid;

use crate::{limits, operation};

/// Where one `event(id:)` of a qualifying query takes its id from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum IdArgument {
    /// Written in the document.
    Literal(String),
    /// A variable of the operation.
    Variable(Name),
}

/// The events a qualifying query reads, by where their ids come from
/// (none: it reads only the platform's settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventReads(Vec<IdArgument>);

impl EventReads {
    /// The ids the query reads with `variables`, sorted and without
    /// repeats; `None` when one is not an id (the execution reports it).
    pub fn ids(&self, variables: &Variables) -> Option<Vec<Uuid>> {
        let mut ids = self
            .0
            .iter()
            .map(|argument| match argument {
                IdArgument::Literal(id) => Uuid::parse_str(id).ok(),
                IdArgument::Variable(name) => match variables.get(name) {
                    Some(ConstValue::String(id)) => Uuid::parse_str(id).ok(),
                    _ => None,
                },
            })
            .collect::<Option<Vec<_>>>()?;
        ids.sort_unstable();
        ids.dedup();
        Some(ids)
    }
}

/// The events the operation `operation_name` of `document` reads, when its
/// answer depends on nothing but them (and the viewer); `None` otherwise.
pub fn event_reads(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<EventReads> {
    let operation = &operation::selected(document, operation_name)?.node;
    if operation.ty != OperationType::Query || !operation.directives.is_empty() {
        return None;
    }
    let mut reads = Vec::new();
    let walk = Walk { document };
    walk.set("Query", &operation.selection_set.node, &mut reads, 0)?;
    Some(EventReads(reads))
}

/// Where `event`'s only argument, `id`, comes from: a string or a variable.
fn id_argument(arguments: &[(Positioned<Name>, Positioned<Value>)]) -> Option<IdArgument> {
    let [(name, value)] = arguments else {
        return None;
    };
    match &value.node {
        _ if name.node != "id" => None,
        Value::String(id) => Some(IdArgument::Literal(id.clone())),
        Value::Variable(variable) => Some(IdArgument::Variable(variable.clone())),
        _ => None,
    }
}

/// What a field of the allowlist is: a leaf, or an object of this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Leaf,
    Object(&'static str),
}

/// The allowlist: the field `name` of the type `parent`, when its value
/// changes only with its event's `version` (or never).
fn field(parent: &str, name: &str) -> Option<Kind> {
    use Kind::{Leaf, Object};
    let kind = match (parent, name) {
        (_, "__typename") => Leaf,
        // `event(id:)` is the walk's own (its argument is read).
        ("Query", "platform") => Object("Platform"),
        (
            "Event",
            "id" | "title" | "description" | "socialPostUrl" | "status" | "selection"
            | "winChancePercent" | "slotCount" | "startsAt" | "endsAt" | "prizeCount"
            | "prizesAwarded" | "totalCost" | "participantCount" | "drawCommitment" | "drawSeed"
            | "createdAt" | "publishedAt" | "cancelledAt" | "cancelReason",
        ) => Leaf,
        // Settings, read once at start; `serverTime` is the clock.
        ("Platform", "currency" | "serviceRateBps" | "depositFeeBps") => Leaf,
        ("Event", "host") => Object("User"),
        ("Event", "prizes") | ("Winner", "prize") => Object("Prize"),
        ("Event", "winners") => Object("Winner"),
        ("User", "id" | "displayName" | "createdAt") => Leaf,
        ("Prize", "id" | "faceValue" | "quantity" | "awarded") => Leaf,
        ("Prize", "cardProduct") => Object("CardProduct"),
        (
            "CardProduct",
            "id" | "name" | "description" | "denominations" | "validityDays" | "createdAt",
        ) => Leaf,
        ("Winner", "id" | "displayName" | "sequence" | "announcedAt" | "disqualifiedAt") => Leaf,
        ("Winner" | "Participant", "event") => Object("Event"),
        ("Winner", "participant") => Object("Participant"),
        ("Participant", "id" | "displayName" | "socialHandle" | "joinedAt" | "won") => Leaf,
        _ => return None,
    };
    Some(kind)
}

/// One look at a document; `depth` counts nested selection sets and
/// fragments, and stops at the document limits' nesting (which a document
/// that got this far is within).
struct Walk<'a> {
    document: &'a ExecutableDocument,
}

impl Walk<'_> {
    /// A selection set on `parent`: allowlisted fields only, and at the
    /// root `event(id:)`, whose id argument goes to `reads`.
    fn set(
        &self,
        parent: &str,
        set: &SelectionSet,
        reads: &mut Vec<IdArgument>,
        depth: usize,
    ) -> Option<()> {
        let depth = nested(depth)?;
        for selection in &set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    if !field.directives.is_empty() {
                        return None;
                    }
                    let name = field.name.node.as_str();
                    if parent == "Query" && name == "event" {
                        reads.push(id_argument(&field.arguments)?);
                        self.set("Event", &field.selection_set.node, reads, depth)?;
                        continue;
                    }
                    if !field.arguments.is_empty() {
                        return None;
                    }
                    if let Kind::Object(child) = self::field(parent, name)? {
                        self.set(child, &field.selection_set.node, reads, depth)?;
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let spread = &spread.node;
                    let fragment = self.spread(&spread.fragment_name.node, &spread.directives)?;
                    applies(Some(&fragment.type_condition), parent)?;
                    self.set(parent, &fragment.selection_set.node, reads, depth)?;
                }
                Selection::InlineFragment(inline) => {
                    let inline = &inline.node;
                    if !inline.directives.is_empty() {
                        return None;
                    }
                    applies(inline.type_condition.as_ref(), parent)?;
                    self.set(parent, &inline.selection_set.node, reads, depth)?;
                }
            }
        }
        Some(())
    }

    /// The fragment a spread names, when neither carries directives.
    fn spread(
        &self,
        name: &Name,
        directives: &[Positioned<async_graphql::parser::types::Directive>],
    ) -> Option<&async_graphql::parser::types::FragmentDefinition> {
        let fragment = &self.document.fragments.get(name)?.node;
        (directives.is_empty() && fragment.directives.is_empty()).then_some(fragment)
    }
}

/// `depth` one level deeper, within the document limits' nesting.
fn nested(depth: usize) -> Option<usize> {
    (depth < limits::MAX_NESTING).then_some(depth + 1)
}

/// `Some` when a fragment with `condition` applies to `parent` exactly
/// (no interfaces or unions are on the allowlist).
fn applies(condition: Option<&Positioned<TypeCondition>>, parent: &str) -> Option<()> {
    condition
        .is_none_or(|condition| condition.node.on.node == parent)
        .then_some(())
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use serde_json::json;

    use super::*;

    fn reads(query: &str) -> Option<EventReads> {
        event_reads(&parse_query(query).expect("parses"), None)
    }

    const ID: &str = "0b6e6a0e-8f5d-4a55-9c1e-3a1d8f9a0c11";

    #[test]
    fn the_public_event_page_qualifies_with_its_id_from_a_variable_or_the_text() {
        let page = "query($id: ID!) { event(id: $id) { id title status prizeCount prizesAwarded \
            host { id displayName } prizes { id faceValue quantity awarded cardProduct { id name } } \
            winners { sequence displayName announcedAt participant { id } prize { id faceValue } } } }";
        let found = reads(page).expect("the page qualifies");
        let variables = Variables::from_json(json!({ "id": ID }));
        assert_eq!(
            found.ids(&variables),
            Some(vec![Uuid::parse_str(ID).unwrap()])
        );
        assert_eq!(
            found.ids(&Variables::from_json(json!({ "id": "nope" }))),
            None
        );
        assert_eq!(found.ids(&Variables::default()), None);

        let literal = format!(
            "{{ a: event(id: \"{ID}\") {{ id }} b: event(id: \"{ID}\") {{ ...E }} __typename }} \
             fragment E on Event {{ winners {{ ... on Winner {{ sequence }} }} }}"
        );
        let found = reads(&literal).expect("aliases and fragments qualify");
        assert_eq!(
            found.ids(&Variables::default()),
            Some(vec![Uuid::parse_str(ID).unwrap()])
        );
    }

    #[test]
    fn anything_that_changes_without_the_events_version_disqualifies() {
        for query in [
            "query($id: ID!) { event(id: $id) { myParticipation { id } } }",
            "query($id: ID!) { event(id: $id) { winners { card { id } } } }",
            "query($id: ID!) { event(id: $id) { winners { participant { status } } } }",
            "query($id: ID!) { event(id: $id) { host { roles } } }",
            "query($id: ID!) { event(id: $id) { host { wallet { balance } } } }",
            "query($id: ID!) { event(id: $id) { prizes { cardProduct { active } } } }",
            "query($id: ID!) { event(id: $id) { participants { totalCount } } }",
            "query($id: ID!) { event(id: $id) { id } me { id } }",
            "query($id: ID!, $s: Boolean!) { event(id: $id) { id @include(if: $s) } }",
            "query($id: ID!) { event(id: $id) { ...E } } fragment E on User { id }",
            "query { events { nodes { id } } }",
            "{ platform { serverTime } }",
            "{ platform { currency } me { id } }",
            "mutation($id: ID!) { cancelEvent(id: $id, reason: \"x\") { id } }",
            "{ event(id: 7) { id } }",
        ] {
            assert_eq!(reads(query), None, "{query}");
        }
    }

    #[test]
    fn the_platforms_settings_read_no_version() {
        let found = reads("{ platform { currency serviceRateBps depositFeeBps } }")
            .expect("settings qualify");
        assert_eq!(found.ids(&Variables::default()), Some(Vec::new()));
    }

    #[test]
    fn the_selected_operation_decides() {
        let document = parse_query(
            "query A($id: ID!) { event(id: $id) { id } } query B($id: ID!) { event(id: $id) { myParticipation { id } } }",
        )
        .expect("parses");
        assert!(event_reads(&document, Some("A")).is_some());
        assert_eq!(event_reads(&document, Some("B")), None);
        assert_eq!(event_reads(&document, None), None);
    }
}
