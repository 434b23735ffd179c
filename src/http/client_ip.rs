//! The client's IP address, the subject of per-IP rate limits (`login`),
//! found through the trusted proxies of the configuration
//! ([`TrustedProxies`]).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

use crate::config::TrustedProxies;

/// The client's address, as [`TrustedProxies::client_ip`] finds it; the
/// one place handlers learn who is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl fmt::Display for ClientIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S> FromRequestParts<S> for ClientIp
where
    S: Send + Sync,
    TrustedProxies: FromRef<S>,
{
    type Rejection = <ConnectInfo<SocketAddr> as FromRequestParts<S>>::Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state).await?;
        let trusted = TrustedProxies::from_ref(state);
        Ok(Self(trusted.client_ip(peer.ip(), &parts.headers)))
    }
}
