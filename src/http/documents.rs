//! Parsed GraphQL documents by query text, shared by HTTP and WebSocket.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_graphql::ServerError;
use async_graphql::parser::types::ExecutableDocument;
use giftdrop_graphql::{SchemaOptions, input, limits};

/// Parsed documents by query text, so the common operations of a front end
/// are parsed once per process rather than once per request. Bounded:
/// when full, new texts are parsed per request until a restart. Every
/// document a request brings is checked against the shape limits here
/// ([`limits::check`]) before the schema validates it, and every request's
/// strings for NUL ([`input::check_strings`]).
pub struct DocumentCache {
    documents: RwLock<HashMap<String, ExecutableDocument>>,
    limits: limits::Limits,
}

impl Default for DocumentCache {
    /// Checks against the limits of the schema's default options, which
    /// the server builds its schema with.
    fn default() -> Self {
        Self {
            documents: RwLock::default(),
            limits: SchemaOptions::default().limits(),
        }
    }
}

impl DocumentCache {
    /// Most documents kept.
    const CAPACITY: usize = 1_000;
    /// Longest query text kept.
    const MAX_QUERY: usize = 8 * 1024;

    /// As [`Self::prepare`], for a subscription, which keeps its document
    /// for as long as it runs. A parse leaves room for at least four
    /// selections in every selection set (each is a `Vec` collected from
    /// the parser): 1,472 bytes of lists for `subscription S { meUpdated {
    /// id roles } }` where a copy, with exact-size lists, takes 552. So a
    /// document that does not come from the cache is replaced by its copy.
    pub fn prepare_long_lived(
        &self,
        request: &mut async_graphql::Request,
    ) -> Result<(), ServerError> {
        if self.prepare(request)? {
            return Ok(());
        }
        if let Ok(document) = request.parsed_query() {
            let compact = document.clone();
            request.set_parsed_query(compact);
        }
        Ok(())
    }

    /// Attaches the parse of `request`'s query (see [`Self::attach`]) and
    /// checks the strings it brings. A syntax error is left for execution
    /// to report. `Ok(true)` when the attached document is a copy of a
    /// cached one (cached documents are copies, with exact-size lists).
    pub fn prepare(&self, request: &mut async_graphql::Request) -> Result<bool, ServerError> {
        let cached = self.attach(request)?;
        let variables = std::mem::take(&mut request.variables);
        let strings = request.parsed_query().map_or(Ok(()), |document| {
            input::check_strings(document, &variables)
        });
        request.variables = variables;
        strings.map(|()| cached)
    }

    /// Attaches the cached parse of `request`'s query, or parses it, checks
    /// it against the shape limits and keeps it (when there is room). A
    /// document over a limit is the request's error (and never cached).
    fn attach(&self, request: &mut async_graphql::Request) -> Result<bool, ServerError> {
        let documents = self
            .documents
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(document) = documents.get(&request.query) {
            request.set_parsed_query(document.clone());
            return Ok(true);
        }
        let keep = documents.len() < Self::CAPACITY && request.query.len() <= Self::MAX_QUERY;
        drop(documents);
        let query = keep.then(|| request.query.clone());
        let Ok(document) = request.parsed_query() else {
            return Ok(false);
        };
        limits::check(document, self.limits)?;
        if let Some(query) = query {
            let document = document.clone();
            self.documents
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(query, document);
        }
        Ok(false)
    }
}
