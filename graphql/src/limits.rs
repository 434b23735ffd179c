//! The alias limit, which async-graphql has no setting for. It is checked
//! where a request's document is parsed (the transport's document cache),
//! not by a schema extension: any extension makes async-graphql run every
//! field and list item through the extension chain (two boxed futures and
//! two registry lookups each), which cost `event(id)` with 100 winners
//! nearly half its throughput.

use async_graphql::ServerError;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Most aliased fields in one document: aliases let one small request
/// multiply work that depth and complexity limits do not see.
pub const MAX_ALIASES: usize = 30;

/// The aliased fields of `document`, in its operations and fragments.
pub fn alias_count(document: &ExecutableDocument) -> usize {
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| in_set(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| in_set(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

fn in_set(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// `Err` with the request's error when `document` has more than
/// [`MAX_ALIASES`] aliases.
pub fn check_aliases(document: &ExecutableDocument) -> Result<(), ServerError> {
    if alias_count(document) > MAX_ALIASES {
        return Err(ServerError::new(
            format!("Query has too many aliases (limit {MAX_ALIASES})."),
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_counted_in_nested_sets_inline_fragments_and_fragments() {
        let document = async_graphql::parser::parse_query(
            "query { a: platform { c: currency } ... on Query { b: platform { currency } } ...F } \
             fragment F on Query { d: platform { currency } }",
        )
        .expect("parses");
        assert_eq!(alias_count(&document), 4);
        assert!(check_aliases(&document).is_ok());
        let many: String = (0..=MAX_ALIASES)
            .map(|i| format!("a{i}: platform {{ currency }} "))
            .collect();
        let document = async_graphql::parser::parse_query(format!("{{ {many} }}")).expect("parses");
        assert!(check_aliases(&document).is_err());
    }
}
