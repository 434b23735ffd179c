//! Parsed GraphQL documents by query text, shared by HTTP and WebSocket.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

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
    documents: RwLock<HashMap<String, Arc<ExecutableDocument>>>,
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

/// A request's parsed document, checked: shared with the cache, or the
/// request's own parse. [`Self::attach`] hands it to the request for
/// execution; until then it is read in place (no copy for a request that
/// is answered without executing).
pub struct Prepared(Option<Arc<ExecutableDocument>>);

impl Prepared {
    /// The document; `None` when the query does not parse (execution
    /// reports why).
    pub fn document(&self) -> Option<&ExecutableDocument> {
        self.0.as_deref()
    }

    /// Attaches the document to `request` for execution: moved when it is
    /// the request's own, copied when shared.
    pub fn attach(self, request: &mut async_graphql::Request) {
        if let Some(document) = self.0 {
            request.set_parsed_query(Arc::unwrap_or_clone(document));
        }
    }
}

impl DocumentCache {
    /// Most documents kept.
    const CAPACITY: usize = 1_000;
    /// Longest query text kept.
    const MAX_QUERY: usize = 8 * 1024;

    /// As [`Self::prepare`], attached to `request`, for a subscription,
    /// which keeps its document for as long as it runs. A parse leaves room
    /// for at least four selections in every selection set (each is a
    /// `Vec` collected from the parser): 1,472 bytes of lists for
    /// `subscription S { meUpdated { id roles } }` where a copy, with
    /// exact-size lists, takes 552. So the request always gets a copy
    /// (cached documents are copies too).
    pub fn prepare_long_lived(
        &self,
        request: &mut async_graphql::Request,
    ) -> Result<(), ServerError> {
        let prepared = self.prepare(request)?;
        if let Some(document) = prepared.document() {
            request.set_parsed_query(document.clone());
        }
        Ok(())
    }

    /// The parse of `request`'s query (see [`Self::parse`]), with the
    /// strings it brings checked. A syntax error is left for execution to
    /// report.
    pub fn prepare(&self, request: &async_graphql::Request) -> Result<Prepared, ServerError> {
        let prepared = Prepared(self.parse(&request.query)?);
        if let Some(document) = prepared.document() {
            input::check_strings(document, &request.variables)?;
        }
        Ok(prepared)
    }

    /// The cached parse of `query`, or its parse, checked against the shape
    /// limits and kept (when there is room). A document over a limit is the
    /// request's error (and never cached); `None` when it does not parse.
    fn parse(&self, query: &str) -> Result<Option<Arc<ExecutableDocument>>, ServerError> {
        let documents = self
            .documents
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(document) = documents.get(query) {
            return Ok(Some(Arc::clone(document)));
        }
        let keep = documents.len() < Self::CAPACITY && query.len() <= Self::MAX_QUERY;
        drop(documents);
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            return Ok(None);
        };
        limits::check(&document, self.limits)?;
        if keep {
            #[expect(
                clippy::redundant_clone,
                reason = "a copy has exact-size lists; the parse has room to spare"
            )]
            let kept = Arc::new(document.clone());
            self.documents
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(query.to_owned(), Arc::clone(&kept));
            return Ok(Some(kept));
        }
        Ok(Some(Arc::new(document)))
    }
}
