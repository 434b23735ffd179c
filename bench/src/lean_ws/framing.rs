//! WebSocket framing, as a client reads and writes it (RFC 6455 §5).

use std::ops::Range;

use anyhow::{Result, bail, ensure};

pub(super) const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Frames what is `pending`, in order: answers WebSocket and protocol
/// pings onto `replies`, and hands every other text frame's payload to
/// `text` until it answers `false`; what was framed is dropped, the rest
/// stays. Fails on a close.
pub(super) fn frame_pending(
    pending: &mut Vec<u8>,
    replies: &mut Vec<u8>,
    mut text: impl FnMut(&[u8]) -> bool,
) -> Result<()> {
    let mut framed = 0;
    let mut wanted = true;
    while wanted {
        let Some((opcode, payload)) = frame(&pending[framed..])? else {
            break;
        };
        let payload = framed + payload.start..framed + payload.end;
        framed = payload.end;
        let bytes = &pending[payload];
        match opcode {
            TEXT if bytes.starts_with(br#"{"type":"ping""#) => {
                masked(TEXT, br#"{"type":"pong"}"#, replies)?;
            }
            TEXT => wanted = text(bytes),
            PING => masked(PONG, bytes, replies)?,
            PONG => {}
            CLOSE => bail!(
                "closed by the server: {}",
                String::from_utf8_lossy(bytes.get(2..).unwrap_or_default())
            ),
            other => bail!("an unexpected frame (opcode {other})"),
        }
    }
    pending.drain(..framed);
    Ok(())
}

/// Appends one final, masked frame to `out`.
pub(super) fn masked(opcode: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    const MASKED: u8 = 0x80;
    out.push(0x80 | opcode);
    let length = payload.len();
    if let Ok(short @ 0..=125) = u8::try_from(length) {
        out.push(MASKED | short);
    } else if let Ok(medium) = u16::try_from(length) {
        out.push(MASKED | 126);
        out.extend_from_slice(&medium.to_be_bytes());
    } else {
        out.push(MASKED | 127);
        out.extend_from_slice(&u64::try_from(length)?.to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    Ok(())
}

/// The first whole frame of `bytes`, if all of it is there: its opcode and
/// where its payload lies (which ends where the frame does).
fn frame(bytes: &[u8]) -> Result<Option<(u8, Range<usize>)>> {
    let [first, second, ..] = *bytes else {
        return Ok(None);
    };
    ensure!(second & 0x80 == 0, "a masked frame from the server");
    ensure!(
        first & 0x80 != 0,
        "a fragmented message (this client reads whole frames only)"
    );
    let (length, header) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[high, low]) => (usize::from(u16::from_be_bytes([high, low])), 4),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(length) => (usize::try_from(u64::from_be_bytes(length.try_into()?))?, 10),
            None => return Ok(None),
        },
        short => (usize::from(short), 2),
    };
    let end = header + length;
    Ok((bytes.len() >= end).then_some((first & 0x0F, header..end)))
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_are_found_only_once_whole() {
        // A short text frame, then the start of a 300-byte one.
        let mut bytes = vec![0x81, 3, b'a', b'b', b'c', 0x81, 126, 0x01, 0x2C];
        assert_eq!(frame(&bytes).expect("valid"), Some((1, 2..5)));
        assert_eq!(frame(&bytes[5..]).expect("valid"), None);
        bytes.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(frame(&bytes[5..]).expect("valid"), Some((1, 4..304)));
        assert_eq!(frame(&bytes[..1]).expect("valid"), None);
    }

    #[test]
    fn masked_and_fragmented_server_frames_are_refused() {
        assert!(frame(&[0x81, 0x83, 0, 0, 0, 0]).is_err());
        assert!(frame(&[0x01, 1, b'a']).is_err());
    }
}
