//! Relay-style connections shared by every paginated field: `edges`,
//! `nodes`, `pageInfo`, with opaque-to-clients cursors.

use async_graphql::SimpleObject;
use giftdrop_domain::{DomainError, DomainResult};

/// Largest page a client may ask for.
pub const MAX_PAGE: i32 = 100;

/// Where a page ends.
#[derive(SimpleObject, Clone)]
pub struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

impl PageInfo {
    /// Page info from its two facts.
    pub fn new(has_next_page: bool, end_cursor: Option<String>) -> Self {
        Self {
            has_next_page,
            end_cursor,
        }
    }
}

/// Splits up to `first + 1` fetched items into the page and whether there
/// is a next one.
pub fn split_page<T>(mut items: Vec<T>, first: usize) -> (Vec<T>, bool) {
    let has_next_page = items.len() > first;
    items.truncate(first);
    (items, has_next_page)
}

/// Defines a concrete `XConnection` / `XEdge` pair for a node type (generic
/// GraphQL objects cannot nest, so each node type gets its own pair).
#[macro_export]
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ty) => {
        #[doc = concat!("One `", stringify!($node), "` with its cursor.")]
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            cursor: String,
            node: $node,
        }

        #[doc = concat!("A page of `", stringify!($node), "`.")]
        #[derive(async_graphql::SimpleObject)]
        pub struct $connection {
            edges: Vec<$edge>,
            nodes: Vec<$node>,
            page_info: $crate::page::PageInfo,
        }

        impl $connection {
            /// A page from up to `first + 1` fetched nodes.
            pub fn from_fetched(
                fetched: Vec<$node>,
                first: usize,
                cursor_of: impl Fn(&$node) -> String,
            ) -> Self {
                let (nodes, has_next_page) = $crate::page::split_page(fetched, first);
                let edges: Vec<$edge> = nodes
                    .iter()
                    .map(|node| $edge {
                        cursor: cursor_of(node),
                        node: node.clone(),
                    })
                    .collect();
                Self {
                    page_info: $crate::page::PageInfo::new(
                        has_next_page,
                        edges.last().map(|e| e.cursor.clone()),
                    ),
                    edges,
                    nodes,
                }
            }
        }
    };
}

/// Validates a `first` argument (1..=100).
pub fn page_size(first: i32) -> DomainResult<usize> {
    if (1..=MAX_PAGE).contains(&first) {
        Ok(usize::try_from(first).unwrap_or(1))
    } else {
        Err(DomainError::bad_input(
            "first",
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// Parses an `after` cursor of a list ordered by uuid.
pub fn cursor(after: Option<String>) -> DomainResult<Option<uuid::Uuid>> {
    after
        .map(|c| {
            uuid::Uuid::parse_str(&c)
                .map_err(|_| DomainError::bad_input("after", "is not a cursor of this list"))
        })
        .transpose()
}
