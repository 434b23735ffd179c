//! A lean graphql-transport-ws subscriber, for the scenario that measures
//! delivery to thousands of sockets on the server's own machine.
//!
//! The load generator shares the server's two cores, so every microsecond
//! it spends on a delivery is taken from the server it measures: with
//! tungstenite and a typed parse of every frame as it arrived, it used
//! about 40% of the CPU while winners were announced (BENCHMARKS.md), and
//! with a tokio task per socket its reads still cost five times what a C
//! reader's do (`bench/loopback-floor.c`). So sockets are opened and
//! subscribed with tokio, then handed to a [`Receiver`]: ONE thread that
//! epolls them all and does, while deliveries are in flight, only what a
//! subscriber must: read whole frames off each socket, note when each read
//! returned, keep the text frames' bytes and answer pings. What the frames
//! say is checked afterwards, from [`Received`].
//!
//! It speaks plain `ws://` only, reads unfragmented server frames (all the
//! server sends) and masks what it sends, as RFC 6455 asks of a client.

mod framing;
mod receiver;
mod subscriber;

pub(crate) use receiver::{Received, Receiver};
pub(crate) use subscriber::Subscriber;
