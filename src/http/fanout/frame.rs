//! What a subscription's executions produce, serialized once: [`Frame`]s,
//! and the WebSocket bytes of their messages ([`Wire`]), built once for
//! every socket that sends the same message under the same id.

use std::sync::{Arc, OnceLock};

use futures_util::stream::BoxStream;
use futures_util::{StreamExt, stream};
use giftdrop_graphql::AppSchema;
use giftdrop_graphql::auth::RequestData;
use giftdrop_graphql::error::{INTERNAL_MESSAGE, finish_errors};

/// One serialized result of a subscription, ready to frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A response (`{"data":…}`, possibly with partial errors).
    Next(Payload),
    /// Several responses, in order: what a subscriber behind by more than
    /// one takes at once, so it costs one turn of the socket's streams and
    /// one write, not one each.
    Run(Run),
    /// A failed response: the serialized `errors` array. Ends the operation.
    Error(Arc<str>),
    /// The operation completed.
    Complete,
}

/// A serialized response, shared by every socket it goes to, with the
/// WebSocket frame of the protocol message first asked of it: thousands of
/// sockets that run one operation under the same subscription id (most
/// clients number theirs from 1) share that frame, byte for byte (a
/// server's frames are not masked), so each only hands the kernel the same
/// bytes, and reading it takes no lock (thousands of sockets on every core
/// ask).
#[derive(Clone, Debug)]
pub struct Payload(Arc<PayloadInner>);

#[derive(Debug)]
struct PayloadInner {
    json: Box<str>,
    framed: Framing,
}

/// Consecutive responses that many sockets take together (every socket
/// that had sent the same last winner, when a burst comes), with the
/// frames of all of them back to back, built once: such a socket writes
/// one slice and counts one reference, whatever the run's length.
#[derive(Clone, Debug)]
pub struct Run(Arc<RunInner>);

#[derive(Debug)]
struct RunInner {
    payloads: Box<[Payload]>,
    framed: Framing,
}

/// The WebSocket bytes of a shared payload or run under the first
/// `(message type, subscription id)` asked for.
#[derive(Debug, Default)]
struct Framing(OnceLock<Framed>);

/// A payload's or run's WebSocket frames for one (message type,
/// subscription id).
#[derive(Debug)]
struct Framed {
    kind: &'static str,
    id: Box<str>,
    bytes: Box<[u8]>,
}

impl Framing {
    /// True if the shared bytes are those of `(kind, id)`, built with
    /// `build` if none were yet; false if they were built for another.
    fn shares(&self, kind: &'static str, id: &str, build: impl FnOnce() -> Vec<u8>) -> bool {
        let framed = self.0.get_or_init(|| Framed {
            kind,
            id: id.into(),
            bytes: build().into_boxed_slice(),
        });
        framed.kind == kind && *framed.id == *id
    }

    fn bytes(&self) -> &[u8] {
        self.0.get().map_or(&[], |framed| &framed.bytes)
    }
}

impl Payload {
    /// The serialized response.
    pub fn as_str(&self) -> &str {
        &self.0.json
    }

    /// The WebSocket frame of the server message
    /// `{"type":kind,"id":id,"payload":…}`.
    fn frame(&self, kind: &str, id: &str) -> Vec<u8> {
        text_frame(&framed_message(kind, id, &self.0.json))
    }

    /// This payload's frame under `(kind, id)`: built once for the first
    /// (kind, id) asked for, and for any other each time. The shared frame
    /// goes as this payload itself, so writing it counts no reference on
    /// bytes that every socket on every core is writing too.
    pub fn into_wire(self, kind: &'static str, id: &str) -> Wire {
        if self.0.framed.shares(kind, id, || self.frame(kind, id)) {
            Wire::Shared(self)
        } else {
            Wire::Own(self.frame(kind, id))
        }
    }
}

impl Run {
    /// A run of `payloads`, in order.
    pub fn new(payloads: Box<[Payload]>) -> Self {
        Self(Arc::new(RunInner {
            payloads,
            framed: Framing::default(),
        }))
    }

    /// The responses, in order.
    pub fn payloads(&self) -> &[Payload] {
        &self.0.payloads
    }

    /// Every payload's frame under `(kind, id)`, back to back.
    fn frames(&self, kind: &'static str, id: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        for payload in self.payloads() {
            bytes.extend_from_slice(payload.clone().into_wire(kind, id).bytes());
        }
        bytes
    }

    /// The run's frames under `(kind, id)`, shared as [`Payload::into_wire`]
    /// shares one frame.
    pub fn into_wire(self, kind: &'static str, id: &str) -> Wire {
        if self.0.framed.shares(kind, id, || self.frames(kind, id)) {
            Wire::Run(self)
        } else {
            Wire::Own(self.frames(kind, id))
        }
    }
}

/// The bytes of whole WebSocket frames, as a socket writes them.
#[derive(Debug)]
pub enum Wire {
    /// A payload's shared frame.
    Shared(Payload),
    /// A run's shared frames.
    Run(Run),
    /// Frames of this socket's own.
    Own(Vec<u8>),
}

impl Wire {
    /// The frames' bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            // `into_wire` makes a shared wire only once its bytes are set.
            Wire::Shared(payload) => payload.0.framed.bytes(),
            Wire::Run(run) => run.0.framed.bytes(),
            Wire::Own(bytes) => bytes,
        }
    }
}

impl From<String> for Payload {
    fn from(json: String) -> Self {
        Self(Arc::new(PayloadInner {
            json: json.into_boxed_str(),
            framed: Framing::default(),
        }))
    }
}

/// A server message around an already serialized JSON payload, without
/// parsing it again.
pub(crate) fn framed_message(kind: &str, id: &str, payload: &str) -> String {
    // The id is the client's: escaped as a JSON string.
    let id = serde_json::Value::from(id);
    format!(r#"{{"type":"{kind}","id":{id},"payload":{payload}}}"#)
}

/// The final, unmasked WebSocket text frame (RFC 6455 §5.2) of `message`,
/// as a server sends it.
pub(crate) fn text_frame(message: &str) -> Vec<u8> {
    const FINAL_TEXT: u8 = 0x81;
    let length = message.len();
    let mut frame = Vec::with_capacity(length + 10);
    frame.push(FINAL_TEXT);
    match (u8::try_from(length), u16::try_from(length)) {
        (Ok(short @ 0..=125), _) => frame.push(short),
        (_, Ok(medium)) => {
            frame.push(126);
            frame.extend_from_slice(&medium.to_be_bytes());
        }
        _ => {
            frame.push(127);
            let long = u64::try_from(length).unwrap_or(u64::MAX);
            frame.extend_from_slice(&long.to_be_bytes());
        }
    }
    frame.extend_from_slice(message.as_bytes());
    frame
}

impl Frame {
    /// Serializes one response, once, its `INTERNAL` errors stamped with
    /// `correlation`, the id of the request that started the execution.
    pub fn of(mut response: async_graphql::Response, correlation: &str) -> Self {
        finish_errors(&mut response, correlation);
        let failed = response.data == async_graphql::Value::Null && !response.errors.is_empty();
        // Serializing these types cannot fail: they hold no maps with
        // non-string keys and no foreign serializers.
        let json = if failed {
            serde_json::to_string(&response.errors)
        } else {
            serde_json::to_string(&response)
        };
        match (failed, json) {
            (false, Ok(json)) => Frame::Next(json.into()),
            (true, Ok(json)) => Frame::Error(json.into()),
            (_, Err(err)) => {
                tracing::error!(error = %err, "could not serialize a subscription response");
                Frame::internal(correlation)
            }
        }
    }

    /// The generic `INTERNAL` failure, as every transport shows it: the
    /// generic message and the correlation id (the details go to the log).
    pub fn internal(correlation: &str) -> Self {
        // Both as JSON strings: escaped, and without a fallible serializer.
        let message = serde_json::Value::from(INTERNAL_MESSAGE);
        let correlation = serde_json::Value::from(correlation);
        Frame::Error(
            format!(
                r#"[{{"message":{message},"extensions":{{"code":"INTERNAL","correlationId":{correlation}}}}}]"#
            )
            .into(),
        )
    }

    /// The frames of an execution: one per response, then `Complete`
    /// unless a failure already ended it. `INTERNAL` errors carry
    /// `correlation`, the id of the request that started it.
    pub fn stream(
        responses: impl futures_util::Stream<Item = async_graphql::Response> + Send + 'static,
        correlation: String,
    ) -> BoxStream<'static, Frame> {
        until_final(
            responses
                .map(move |response| Frame::of(response, &correlation))
                .chain(stream::once(async { Frame::Complete })),
        )
    }

    /// The frames of `request` run for `data`'s viewer.
    pub fn execute(
        schema: &AppSchema,
        request: async_graphql::Request,
        data: RequestData,
    ) -> BoxStream<'static, Frame> {
        let correlation = data.meta.correlation_id.clone();
        Frame::stream(schema.execute_stream(request.data(data)), correlation)
    }

    /// True for a frame that ends the operation.
    pub fn is_final(&self) -> bool {
        !matches!(self, Frame::Next(_) | Frame::Run(_))
    }
}

/// `frames` up to and including the first final one.
pub(crate) fn until_final(
    frames: impl futures_util::Stream<Item = Frame> + Send + 'static,
) -> BoxStream<'static, Frame> {
    frames
        .scan(false, |ended, frame| {
            let item = (!*ended).then(|| {
                *ended = frame.is_final();
                frame
            });
            async move { item }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

    use super::{Payload, Run, Wire, text_frame};

    /// The text a server frame carries, read back by tungstenite's parser.
    fn text_of(frame: &[u8]) -> String {
        let mut cursor = Cursor::new(frame);
        let (header, length) = FrameHeader::parse(&mut cursor)
            .expect("a frame header")
            .expect("a whole header");
        assert!(header.is_final);
        assert_eq!(header.opcode, OpCode::Data(Data::Text));
        assert_eq!(header.mask, None, "a server frame is never masked");
        let start = usize::try_from(cursor.position()).expect("offset");
        let body = &frame[start..];
        assert_eq!(u64::try_from(body.len()).expect("length"), length);
        String::from_utf8(body.to_vec()).expect("UTF-8")
    }

    #[test]
    fn text_frames_match_tungstenite_at_every_length_encoding() {
        // 7-bit, 16-bit and 64-bit lengths, on both sides of each boundary.
        for length in [0, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let message = "x".repeat(length);
            let ours = text_frame(&message);
            let mut theirs = Vec::new();
            Frame::message(message.clone(), OpCode::Data(Data::Text), true)
                .format(&mut theirs)
                .expect("format");
            assert_eq!(&ours[..], &theirs[..], "length {length}");
            assert_eq!(text_of(&ours), message);
        }
    }

    #[test]
    fn a_run_is_its_payloads_frames_back_to_back_shared_under_its_first_id() {
        let payloads: Vec<Payload> = (1..=3)
            .map(|n| Payload::from(format!(r#"{{"data":{{"n":{n}}}}}"#)))
            .collect();
        let run = Run::new(payloads.clone().into_boxed_slice());
        let wire = run.clone().into_wire("next", "1");
        assert!(matches!(wire, Wire::Run(_)));
        let expected: Vec<u8> = payloads
            .iter()
            .flat_map(|payload| payload.clone().into_wire("next", "1").bytes().to_vec())
            .collect();
        assert_eq!(wire.bytes(), &expected[..]);
        let again = run.clone().into_wire("next", "1");
        assert!(std::ptr::eq(wire.bytes(), again.bytes()));
        // Under another id: the same frames, this socket's own.
        let other = run.into_wire("next", "2");
        assert!(matches!(other, Wire::Own(_)));
        assert_eq!(other.bytes().len(), expected.len());
        assert_ne!(other.bytes(), &expected[..]);
    }

    #[test]
    fn a_payload_frames_each_kind_and_id_exactly_and_shares_the_first_frame() {
        let payload = Payload::from(r#"{"data":{"n":1}}"#.to_owned());
        let first = payload.clone().into_wire("next", "1");
        assert!(matches!(first, Wire::Shared(_)));
        assert_eq!(
            text_of(first.bytes()),
            r#"{"type":"next","id":"1","payload":{"data":{"n":1}}}"#
        );
        // The same frame again: the very same bytes, not a copy.
        let again = payload.clone().into_wire("next", "1");
        assert!(std::ptr::eq(first.bytes(), again.bytes()));
        // Another client's id is escaped as a JSON string, in its own frame.
        let other = payload.clone().into_wire("data", "a\"b");
        assert!(matches!(other, Wire::Own(_)));
        let parsed: serde_json::Value =
            serde_json::from_str(&text_of(other.bytes())).expect("JSON");
        assert_eq!(parsed["type"], "data");
        assert_eq!(parsed["id"], "a\"b");
        assert_eq!(parsed["payload"]["data"]["n"], 1);
        // The first frame stays the shared one.
        let after_other = payload.into_wire("next", "1");
        assert!(std::ptr::eq(first.bytes(), after_other.bytes()));
    }
}
