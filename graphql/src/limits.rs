//! Query-shape limits, checked on the parsed document before async-graphql
//! sees it (the transports' document cache calls [`check`], for HTTP and
//! WebSocket alike).
//!
//! async-graphql enforces depth, complexity and recursion depth itself, but
//! by walking the document with every fragment spread expanded in place:
//! a document of N fragments that each spread the previous one twice
//! expands to 2^N selections, and a 1 KB one cost seconds of CPU to refuse.
//! [`check`] computes the same figures with each fragment's expansion
//! computed once and reused (time linear in the document), and refuses
//! every over-limit document before any expanding walk. What it lets
//! through expands to at most [`MAX_NODES`] selections and argument values,
//! which bounds every later walk and the execution.
//!
//! It also enforces the alias limit, which async-graphql has no setting
//! for, counting a fragment's aliases once per spread. These checks are not
//! a schema extension: any extension makes async-graphql run every field
//! and list item through the extension chain (two boxed futures and two
//! registry lookups each), which cost `event(id)` with 100 winners nearly
//! half its throughput.

use std::collections::HashMap;

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError};
use async_graphql_value::Value;

use crate::error::bad_user_input;

/// Most aliased fields in one document, each fragment counted once per
/// spread: aliases let one small request multiply work that depth and
/// complexity limits do not see.
pub const MAX_ALIASES: u64 = 30;

/// Most selections, argument values and directives that the document's
/// operations and fragments expand to, together (each fragment counts on
/// its own too, as validation walks it on its own). The standard
/// introspection query needs about 400.
pub const MAX_NODES: u64 = 10_000;

/// Deepest nesting of selection sets, fragments and inline fragments
/// included (async-graphql's "recursion depth"): also the deepest this
/// check itself recurses.
pub const MAX_NESTING: usize = 32;

/// The limits a document must stay within.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest field nesting, as async-graphql's `limit_depth` counts it.
    pub max_depth: usize,
    /// Highest complexity, as async-graphql's `limit_complexity` counts it
    /// with the default of one per field (no field sets its own).
    pub max_complexity: usize,
}

/// What a selection set expands to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Size {
    /// Fields other than `__typename`: async-graphql's complexity.
    fields: u64,
    /// Aliased fields.
    aliases: u64,
    /// Selections, argument values and directives: the work of a walk.
    nodes: u64,
    /// Field depth, as async-graphql counts it.
    depth: usize,
    /// Selection-set nesting, spreads and inline fragments included.
    nesting: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.fields = self.fields.saturating_add(other.fields);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.nodes = self.nodes.saturating_add(other.nodes);
        self.depth = self.depth.max(other.depth);
        self.nesting = self.nesting.max(other.nesting);
    }
}

/// `Err` with the request's error (`BAD_USER_INPUT`) when `document`
/// exceeds a limit or has a fragment cycle. Linear in the document's size.
pub fn check(document: &ExecutableDocument, limits: Limits) -> Result<(), ServerError> {
    Walk::new(document).check(limits)
}

/// One pass over a document, each fragment's expansion computed once.
struct Walk<'a> {
    document: &'a ExecutableDocument,
    /// Fragments computed (`Some`) or being computed (`None`).
    fragments: HashMap<&'a str, Option<Size>>,
    /// Selections looked at, for the test of linearity.
    visited: u64,
}

impl<'a> Walk<'a> {
    fn new(document: &'a ExecutableDocument) -> Self {
        Self {
            document,
            fragments: HashMap::with_capacity(document.fragments.len()),
            visited: 0,
        }
    }

    fn check(&mut self, limits: Limits) -> Result<(), ServerError> {
        let mut operations = Size::default();
        for (_, operation) in self.document.operations.iter() {
            let mut size = self.set(&operation.node.selection_set.node, 0)?;
            size.nodes = size
                .nodes
                .saturating_add(directive_nodes(&operation.node.directives));
            within_nesting(size.nesting)?;
            operations.add(size);
        }
        // Validation also walks every fragment once on its own.
        let mut nodes = operations.nodes;
        let document = self.document;
        for name in document.fragments.keys() {
            if let Some(size) = self.fragment(name, 0)? {
                within_nesting(size.nesting)?;
                nodes = nodes.saturating_add(size.nodes);
            }
        }
        if operations.fields > u64::try_from(limits.max_complexity).unwrap_or(u64::MAX) {
            return Err(bad_user_input("Query is too complex.", None));
        }
        if operations.depth > limits.max_depth {
            return Err(bad_user_input("Query is nested too deep.", None));
        }
        if operations.aliases > MAX_ALIASES {
            return Err(bad_user_input(
                format!("Query has too many aliases (limit {MAX_ALIASES})."),
                None,
            ));
        }
        if nodes > MAX_NODES {
            return Err(bad_user_input(
                format!(
                    "Query is too large: it expands to more than {MAX_NODES} selections and argument values."
                ),
                None,
            ));
        }
        Ok(())
    }

    /// The expansion of `set`, found at `nesting` sets below a definition.
    fn set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<Size, ServerError> {
        within_nesting(nesting)?;
        let mut size = Size::default();
        for item in &set.items {
            self.visited += 1;
            size.add(self.selection(&item.node, nesting)?);
        }
        Ok(size)
    }

    fn selection(&mut self, item: &'a Selection, nesting: usize) -> Result<Size, ServerError> {
        let below = |size: Size| size.nesting + 1;
        Ok(match item {
            Selection::Field(field) => {
                let field = &field.node;
                let children = &field.selection_set.node;
                let inner = self.set(children, nesting + 1)?;
                let typename = field.name.node == "__typename";
                let arguments: u64 = field
                    .arguments
                    .iter()
                    .map(|(_, value)| value_nodes(&value.node))
                    .sum();
                Size {
                    fields: inner.fields.saturating_add(u64::from(!typename)),
                    aliases: inner
                        .aliases
                        .saturating_add(u64::from(field.alias.is_some())),
                    nodes: inner
                        .nodes
                        .saturating_add(arguments)
                        .saturating_add(1 + directive_nodes(&field.directives)),
                    depth: if typename { 0 } else { inner.depth + 1 },
                    nesting: if children.items.is_empty() {
                        0
                    } else {
                        below(inner)
                    },
                }
            }
            Selection::InlineFragment(fragment) => {
                let inner = self.set(&fragment.node.selection_set.node, nesting + 1)?;
                Size {
                    nodes: inner
                        .nodes
                        .saturating_add(1 + directive_nodes(&fragment.node.directives)),
                    nesting: below(inner),
                    ..inner
                }
            }
            Selection::FragmentSpread(spread) => {
                let own = 1 + directive_nodes(&spread.node.directives);
                match self.fragment(&spread.node.fragment_name.node, nesting + 1)? {
                    // Unknown: validation reports it.
                    None => Size {
                        nodes: own,
                        ..Size::default()
                    },
                    Some(inner) => Size {
                        nodes: inner.nodes.saturating_add(own),
                        nesting: below(inner),
                        ..inner
                    },
                }
            }
        })
    }

    /// The expansion of the fragment `name` (`None` if there is no such
    /// fragment), computed on first use.
    fn fragment(&mut self, name: &'a str, nesting: usize) -> Result<Option<Size>, ServerError> {
        match self.fragments.get(name) {
            Some(Some(size)) => return Ok(Some(*size)),
            Some(None) => {
                return Err(bad_user_input(
                    format!("Cannot spread fragment \"{name}\" within itself."),
                    None,
                ));
            }
            None => {}
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            return Ok(None);
        };
        self.fragments.insert(name, None);
        let mut size = self.set(&fragment.node.selection_set.node, nesting)?;
        size.nodes = size
            .nodes
            .saturating_add(directive_nodes(&fragment.node.directives));
        self.fragments.insert(name, Some(size));
        Ok(Some(size))
    }
}

/// `Err` when selection sets nest deeper than [`MAX_NESTING`] (a
/// fragment cycle nests without end).
fn within_nesting(nesting: usize) -> Result<(), ServerError> {
    if nesting > MAX_NESTING {
        return Err(bad_user_input(
            format!("The recursion depth of the query cannot be greater than `{MAX_NESTING}`"),
            None,
        ));
    }
    Ok(())
}

/// Directives and their argument values.
fn directive_nodes(directives: &[Positioned<Directive>]) -> u64 {
    directives
        .iter()
        .map(|directive| {
            1 + directive
                .node
                .arguments
                .iter()
                .map(|(_, value)| value_nodes(&value.node))
                .sum::<u64>()
        })
        .sum()
}

/// The nodes of a literal value: a list or object counts its items.
fn value_nodes(value: &Value) -> u64 {
    1 + match value {
        Value::List(items) => items.iter().map(value_nodes).sum(),
        Value::Object(fields) => fields.values().map(value_nodes).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_depth: 16,
        max_complexity: 500,
    };

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).expect("parses")
    }

    fn refusal(query: &str) -> Option<String> {
        check(&parse(query), LIMITS).err().map(|error| {
            let code = error
                .extensions
                .as_ref()
                .and_then(|e| e.get("code").cloned());
            assert_eq!(code, Some(async_graphql::Value::from("BAD_USER_INPUT")));
            error.message
        })
    }

    /// `levels` fragments, each spreading the one before twice, under
    /// `leaf`: 2^levels copies of `leaf` once expanded.
    fn bomb(levels: usize, leaf: &str) -> String {
        let mut query = format!("query {{ ...F{levels} }} fragment F0 on Query {{ {leaf} }}");
        for i in 1..=levels {
            query.push_str(&format!(
                " fragment F{i} on Query {{ ...F{} ...F{} }}",
                i - 1,
                i - 1
            ));
        }
        query
    }

    #[test]
    fn fragment_bombs_are_refused_in_one_visit_per_selection() {
        for leaf in ["platform { currency }", "__typename"] {
            for levels in [12, 24, 40, 63, 200] {
                let document = parse(&bomb(levels, leaf));
                let mut walk = Walk::new(&document);
                let refused = walk.check(LIMITS).expect_err("a bomb is refused");
                // The operation's spread, two spreads per fragment, the leaf.
                let written = 1 + 2 * levels as u64 + if leaf == "__typename" { 1 } else { 2 };
                // Deeper than 32 levels, the walk stops at the 33rd.
                assert!(
                    walk.visited <= written,
                    "{leaf} x 2^{levels}: {}",
                    walk.visited
                );
                assert!(
                    ["too complex", "too large", "recursion depth"]
                        .iter()
                        .any(|why| refused.message.contains(why)),
                    "{leaf} x 2^{levels}: {}",
                    refused.message
                );
            }
        }
        // Small enough bombs are ordinary documents.
        assert_eq!(refusal(&bomb(5, "platform { currency }")), None);
        assert_eq!(
            refusal(&bomb(9, "platform { currency }")).as_deref(),
            Some("Query is too complex."),
            "2^9 platform fields and as many currencies"
        );
    }

    #[test]
    fn depth_and_complexity_are_counted_as_async_graphql_counts_them() {
        let nested = |levels: usize| {
            format!(
                "{{ __schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }} }}",
                "ofType { ".repeat(levels),
                " }".repeat(levels)
            )
        };
        // __schema queryType fields type: 4, each ofType 1, name 1.
        assert_eq!(refusal(&nested(11)), None);
        assert_eq!(
            refusal(&nested(12)).as_deref(),
            Some("Query is nested too deep.")
        );
        // Through a fragment, the same.
        let through = format!(
            "{{ __schema {{ ...S }} }} fragment S on __Schema {{ queryType {{ fields {{ type {{ {}name{} }} }} }} }}",
            "ofType { ".repeat(12),
            " }".repeat(12)
        );
        assert_eq!(
            refusal(&through).as_deref(),
            Some("Query is nested too deep.")
        );
        // __typename counts for neither.
        let typenames: String = (0..600).map(|_| "__typename ").collect();
        assert_eq!(refusal(&format!("{{ {typenames} }}")), None);
        let fields: String = (0..501).map(|_| "platform { currency } ").collect();
        assert_eq!(
            refusal(&format!("{{ {fields} }}")).as_deref(),
            Some("Query is too complex.")
        );
    }

    #[test]
    fn aliases_are_counted_once_per_spread() {
        let document = "query { a: platform { c: currency } ... on Query { b: platform { currency } } ...F ...G } \
             fragment F on Query { d: platform { currency } } fragment G on Query { ...F }";
        let document = parse(document);
        let (_, operation) = document.operations.iter().next().expect("an operation");
        let size = Walk::new(&document)
            .set(&operation.node.selection_set.node, 0)
            .expect("within the limits");
        // a, c, b, and d through F and again through G.
        assert_eq!(size.aliases, 5);
        assert!(check(&document, LIMITS).is_ok());
        let aliases: String = (0..16)
            .map(|i| format!("a{i}: platform {{ currency }} "))
            .collect();
        let twice =
            format!("{{ ...F ... on Query {{ ...F }} }} fragment F on Query {{ {aliases} }}");
        assert_eq!(
            refusal(&twice).as_deref(),
            Some("Query has too many aliases (limit 30).")
        );
    }

    #[test]
    fn cycles_and_long_chains_are_refused_without_deep_recursion() {
        assert_eq!(
            refusal("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
                .as_deref(),
            Some("Cannot spread fragment \"A\" within itself.")
        );
        // A chain of 10,000 fragments nobody spreads: async-graphql's
        // validation would follow it 10,000 calls deep.
        let mut chain = String::from("{ platform { currency } }");
        for i in 0..10_000 {
            chain.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
        }
        chain.push_str(" fragment F10000 on Query { __typename }");
        assert_eq!(
            refusal(&chain).as_deref(),
            Some("The recursion depth of the query cannot be greater than `32`")
        );
        // An unknown fragment is validation's to report.
        assert_eq!(refusal("{ ...Nowhere }"), None);
    }

    #[test]
    fn large_argument_values_count_once_per_expansion() {
        let list: String = (0..1_000).map(|i| format!("\"{i}\",")).collect();
        let once = format!(
            "{{ ...F }} fragment F on Query {{ platform {{ currency }} a: user(id: \"x\", list: [{list}]) {{ id }} }}"
        );
        assert_eq!(refusal(&once), None);
        let spreads: String = (0..10).map(|_| "... on Query { ...F } ").collect();
        let many = format!(
            "{{ {spreads} }} fragment F on Query {{ user(id: \"x\", list: [{list}]) {{ id }} }}"
        );
        assert!(refusal(&many).is_some_and(|m| m.contains("too large")));
    }
}
