//! The gRPC wire pieces of a health check, as pure functions: the request frame, the response
//! message, `grpc-timeout`, `grpc-message` decoding and the names of codes and statuses.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::super::Failure;
use crate::api::Reason;

/// gRPC status names, by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of gRPC status `code` (`UNIMPLEMENTED`).
pub fn code_name(code: u32) -> String {
    (CODES.get(code as usize)).map_or_else(|| format!("CODE_{code}"), |name| (*name).into())
}

/// The name of serving status `number` (`NOT_SERVING`).
pub fn serving_name(number: i64) -> String {
    match number {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => format!("STATUS_{other}"),
    }
}

/// `grpc-timeout` for what is left of the probe: whole milliseconds, at least 1.
pub fn grpc_timeout(left: Duration) -> String {
    let millis = left.as_millis().clamp(1, 99_999_999);
    format!("{millis}m")
}

/// `HealthCheckRequest { service }` in a gRPC frame: flag 0 (not compressed), length, then
/// field 1 (tag 0x0a, length-delimited).
pub fn encode_request(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a);
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(&message);
    frame.freeze()
}

fn put_varint(buffer: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buffer.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buffer.put_u8(value as u8);
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes.get(i + 1..i + 3)).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The serving status of a framed `HealthCheckResponse` (field 1, varint; other fields
/// skipped; absent means 0, UNKNOWN).
pub fn decode_response(framed: &[u8]) -> Result<i64, Failure> {
    let bad = |why: &str| {
        Failure::new(
            Reason::ProtocolMismatch,
            format!("the health response is not a HealthCheckResponse: {why}"),
        )
    };
    let [flag, l0, l1, l2, l3, message @ ..] = framed else {
        return Err(bad("no gRPC message frame"));
    };
    if *flag != 0 {
        return Err(bad("compressed, though no compression was offered"));
    }
    let length = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
    let mut message = message
        .get(..length)
        .ok_or_else(|| bad("the frame is cut short"))?;
    let mut serving = 0;
    while !message.is_empty() {
        let key = varint(&mut message).ok_or_else(|| bad("a broken field key"))?;
        match (key >> 3, key & 7) {
            (1, 0) => {
                serving = varint(&mut message).ok_or_else(|| bad("a broken status"))? as i64;
            }
            (_, 0) => {
                varint(&mut message).ok_or_else(|| bad("a broken varint"))?;
            }
            (_, 2) => {
                let len = varint(&mut message).ok_or_else(|| bad("a broken length"))? as usize;
                message = message.get(len..).ok_or_else(|| bad("a field cut short"))?;
            }
            (_, 1) => message = message.get(8..).ok_or_else(|| bad("a field cut short"))?,
            (_, 5) => message = message.get(4..).ok_or_else(|| bad("a field cut short"))?,
            (_, wire) => return Err(bad(&format!("wire type {wire}"))),
        }
    }
    Ok(serving)
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frames_and_responses_decode() {
        let frame = encode_request("pay");
        assert_eq!(&frame[..], &[0, 0, 0, 0, 5, 0x0a, 3, b'p', b'a', b'y']);
        assert_eq!(&encode_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]).unwrap(), 1);
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 0]).unwrap(),
            0,
            "absent is UNKNOWN"
        );
        let with_unknown_field = [0, 0, 0, 0, 6, 0x12, 2, b'h', b'i', 0x08, 2];
        assert_eq!(decode_response(&with_unknown_field).unwrap(), 2);
        for bad in [
            &[][..],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 0, 9, 0x08],
            &[0, 0, 0, 0, 1, 0x08],
        ] {
            assert_eq!(
                decode_response(bad).unwrap_err().reason,
                Reason::ProtocolMismatch
            );
        }
    }

    #[test]
    fn timeouts_messages_and_names() {
        assert_eq!(grpc_timeout(Duration::from_millis(2500)), "2500m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(percent_decode("not%20found%3A x"), "not found: x");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(code_name(12), "UNIMPLEMENTED");
        assert_eq!(code_name(99), "CODE_99");
        assert_eq!(serving_name(2), "NOT_SERVING");
    }
}
