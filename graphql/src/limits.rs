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
mod tests;
