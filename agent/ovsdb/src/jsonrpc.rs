//! JSON-RPC 1.0 as OVSDB speaks it (RFC 7047 §4): a byte stream of JSON objects with no
//! delimiters, and the three message shapes (request, notification, response).
//!
//! [`FrameDecoder`] is pure: push the bytes you read, pull complete messages out. It finds
//! message boundaries with a small incremental scanner (string/escape aware bracket stack, which also catches mismatched brackets early)
//! so each byte is scanned once however the stream is split, then hands the complete frame
//! to `serde_json`. A byte that cannot start a message, a frame over the size limit, or a
//! frame that is not valid JSON is a [`JsonRpcError`]; the connection should then be closed,
//! because the stream position is lost.

use serde_json::{json, Map, Value};

use crate::atom::snippet;

/// Default cap on one message (a full Open_vSwitch monitor reply for thousands of ports is a
/// few MiB).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonRpcError {
    #[error("byte 0x{byte:02x} at stream offset {offset} cannot start a JSON-RPC message")]
    UnexpectedByte { byte: u8, offset: u64 },
    #[error("JSON-RPC message exceeds {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("JSON-RPC message is not valid JSON: {reason}")]
    InvalidJson { reason: String },
    #[error("not a JSON-RPC message: {reason}: {value}")]
    InvalidMessage { reason: &'static str, value: String },
}

/// Incremental splitter of a delimiter-less JSON object stream.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Next byte of `buf` to scan.
    pos: usize,
    /// Start of the frame being scanned, if inside one.
    start: Option<usize>,
    /// Open brackets of the frame being scanned (`{` or `[`), innermost last.
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    /// Bytes consumed (removed from `buf`) so far, for error offsets.
    consumed: u64,
    max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_BYTES)
    }
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            pos: 0,
            start: None,
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            consumed: 0,
            max_frame,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Returns the next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Value>, JsonRpcError> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            match self.start {
                None => {
                    if b.is_ascii_whitespace() {
                        self.pos += 1;
                        continue;
                    }
                    if b != b'{' && b != b'[' {
                        return Err(JsonRpcError::UnexpectedByte {
                            byte: b,
                            offset: self.consumed + self.pos as u64,
                        });
                    }
                    self.start = Some(self.pos);
                    self.stack.clear();
                    self.stack.push(b);
                }
                Some(start) => {
                    if self.in_string {
                        if self.escaped {
                            self.escaped = false;
                        } else if b == b'\\' {
                            self.escaped = true;
                        } else if b == b'"' {
                            self.in_string = false;
                        }
                    } else {
                        match b {
                            b'"' => self.in_string = true,
                            b'{' | b'[' => self.stack.push(b),
                            b'}' | b']' => {
                                let open = if b == b'}' { b'{' } else { b'[' };
                                if self.stack.pop() != Some(open) {
                                    return Err(JsonRpcError::InvalidJson {
                                        reason: format!(
                                            "mismatched '{}' at stream offset {}",
                                            b as char,
                                            self.consumed + self.pos as u64
                                        ),
                                    });
                                }
                                if self.stack.is_empty() {
                                    let end = self.pos + 1;
                                    let parsed =
                                        serde_json::from_slice::<Value>(&self.buf[start..end]);
                                    self.buf.drain(..end);
                                    self.consumed += end as u64;
                                    self.pos = 0;
                                    self.start = None;
                                    return parsed.map(Some).map_err(|e| {
                                        JsonRpcError::InvalidJson {
                                            reason: e.to_string(),
                                        }
                                    });
                                }
                            }
                            _ => {}
                        }
                    }
                    if self.pos + 1 - start > self.max_frame {
                        return Err(JsonRpcError::FrameTooLarge {
                            limit: self.max_frame,
                        });
                    }
                }
            }
            self.pos += 1;
        }
        // Drop leading whitespace we have scanned past, so idle streams do not grow.
        if self.start.is_none() && self.pos > 0 {
            self.buf.drain(..self.pos);
            self.consumed += self.pos as u64;
            self.pos = 0;
        }
        Ok(None)
    }
}

/// A JSON-RPC 1.0 message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a response with the same `id`.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A call without a response (`id` null).
    Notification { method: String, params: Value },
    /// A reply: `Ok(result)` when `error` is null, else `Err(error)`.
    Response {
        id: Value,
        result: Result<Value, Value>,
    },
}

impl Message {
    pub fn from_value(v: Value) -> Result<Message, JsonRpcError> {
        let bad = |reason: &'static str, v: &Value| JsonRpcError::InvalidMessage {
            reason,
            value: snippet(v),
        };
        let Value::Object(mut obj) = v else {
            return Err(bad("not an object", &v));
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(bad("method is not a string", &Value::Object(obj)));
            };
            let params = obj.remove("params").unwrap_or(Value::Array(Vec::new()));
            if !params.is_array() {
                return Err(bad("params is not an array", &params));
            }
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        if obj.contains_key("result") || obj.contains_key("error") {
            if id.is_null() {
                let mut o = obj;
                o.insert("id".into(), id);
                return Err(bad("response without id", &Value::Object(o)));
            }
            let error = obj.remove("error").unwrap_or(Value::Null);
            let result = obj.remove("result").unwrap_or(Value::Null);
            return Ok(Message::Response {
                id,
                result: if error.is_null() {
                    Ok(result)
                } else {
                    Err(error)
                },
            });
        }
        let mut o = obj;
        o.insert("id".into(), id);
        Err(bad("neither method nor result/error", &Value::Object(o)))
    }

    pub fn to_value(&self) -> Value {
        match self {
            Message::Request { id, method, params } => {
                json!({"id": id, "method": method, "params": params})
            }
            Message::Notification { method, params } => {
                json!({"id": null, "method": method, "params": params})
            }
            Message::Response { id, result } => {
                let mut m = Map::new();
                match result {
                    Ok(r) => {
                        m.insert("result".into(), r.clone());
                        m.insert("error".into(), Value::Null);
                    }
                    Err(e) => {
                        m.insert("result".into(), Value::Null);
                        m.insert("error".into(), e.clone());
                    }
                }
                m.insert("id".into(), id.clone());
                Value::Object(m)
            }
        }
    }

    /// Serialized bytes, ready to write.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing a serde_json::Value cannot fail.
        serde_json::to_vec(&self.to_value()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames(d: &mut FrameDecoder) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = d.next_frame().expect("frame") {
            out.push(v);
        }
        out
    }

    #[test]
    fn splits_concatenated_objects() {
        let mut d = FrameDecoder::default();
        d.push(br#"{"a":1}{"b":[1,{"c":"}"}]}  {"d":"\"{"}"#);
        let frames = all_frames(&mut d);
        assert_eq!(
            frames,
            vec![
                json!({"a":1}),
                json!({"b":[1,{"c":"}"}]}),
                json!({"d":"\"{"})
            ]
        );
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn handles_every_split_point() {
        let stream = br#"{"id":1,"result":["x\\\"y{",{"m":["map",[]]}],"error":null} {"method":"echo","params":[],"id":"echo"}"#;
        for cut in 0..stream.len() {
            let mut d = FrameDecoder::default();
            d.push(&stream[..cut]);
            let mut frames = all_frames(&mut d);
            d.push(&stream[cut..]);
            frames.extend(all_frames(&mut d));
            assert_eq!(frames.len(), 2, "cut at {cut}");
            assert_eq!(frames[0]["result"][0], json!("x\\\"y{"));
        }
        // Byte at a time, including inside a multi-byte UTF-8 character.
        let utf = "{\"s\":\"héllo ☃\"}".as_bytes();
        let mut d = FrameDecoder::default();
        let mut frames = Vec::new();
        for b in utf {
            d.push(&[*b]);
            frames.extend(all_frames(&mut d));
        }
        assert_eq!(frames, vec![json!({"s":"héllo ☃"})]);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut d = FrameDecoder::default();
        d.push(b"  hello");
        assert!(matches!(
            d.next_frame(),
            Err(JsonRpcError::UnexpectedByte {
                byte: b'h',
                offset: 2
            })
        ));
        let mut d = FrameDecoder::default();
        d.push(b"{\"a\":tru}");
        assert!(matches!(
            d.next_frame(),
            Err(JsonRpcError::InvalidJson { .. })
        ));
        let mut d = FrameDecoder::default();
        d.push(b"{\"a\":]");
        assert!(matches!(
            d.next_frame(),
            Err(JsonRpcError::InvalidJson { .. })
        ));
        // Detected before the frame could ever complete.
        let mut d = FrameDecoder::default();
        d.push(b"{\"result\":[1}garbage");
        assert!(matches!(
            d.next_frame(),
            Err(JsonRpcError::InvalidJson { .. })
        ));
    }

    #[test]
    fn frame_limit() {
        let mut d = FrameDecoder::new(16);
        d.push(br#"{"aaaaaaaaaaaaaaaaaaaaaaaaa":1}"#);
        assert_eq!(
            d.next_frame(),
            Err(JsonRpcError::FrameTooLarge { limit: 16 })
        );
    }

    #[test]
    fn message_shapes() {
        let req =
            Message::from_value(json!({"id":"echo","method":"echo","params":[]})).expect("req");
        assert!(matches!(req, Message::Request { ref method, .. } if method == "echo"));
        let note = Message::from_value(json!({"id":null,"method":"update","params":["m",{}]}))
            .expect("note");
        assert!(matches!(note, Message::Notification { .. }));
        let ok = Message::from_value(json!({"id":3,"result":[1],"error":null})).expect("ok");
        assert_eq!(
            ok,
            Message::Response {
                id: json!(3),
                result: Ok(json!([1]))
            }
        );
        let err = Message::from_value(json!({"id":4,"result":null,"error":"unknown method"}))
            .expect("err");
        assert_eq!(
            err,
            Message::Response {
                id: json!(4),
                result: Err(json!("unknown method"))
            }
        );
        for (m, v) in [
            (req.clone(), req.to_value()),
            (note.clone(), note.to_value()),
            (ok.clone(), ok.to_value()),
            (err.clone(), err.to_value()),
        ] {
            assert_eq!(Message::from_value(v).expect("round trip"), m);
        }
    }

    #[test]
    fn bad_messages() {
        for v in [
            json!([1, 2]),
            json!({"id": 1}),
            json!({"method": 5, "params": []}),
            json!({"method": "x", "params": {}}),
            json!({"result": 1, "error": null}),
        ] {
            assert!(Message::from_value(v.clone()).is_err(), "{v}");
        }
    }
}
