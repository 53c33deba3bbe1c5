//! Short fixed-seed fuzz runs (in CI) of the OVSDB JSON-RPC side: the frame splitter fed
//! random and mutated byte streams in random chunk sizes, message classification, atom,
//! datum and row decoding, and monitor updates applied to a replica. Every input gives a
//! value or an error, never a panic; valid frames split across chunks still come out whole.

use serde_json::{json, Value};
use weft_ovsdb::atom::{row_from_json, Atom, Datum};
use weft_ovsdb::jsonrpc::{FrameDecoder, Message};
use weft_ovsdb::{DbSchema, Replica, UpdateFormat};

/// xorshift64*: the same sequence in every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Value> {
    vec![
        json!({"id": 1, "method": "echo", "params": []}),
        json!({"id": null, "method": "update2", "params": ["mon", {"Interface": {"00000000-0000-0000-0000-000000000001": {"insert": {"name": "p1", "ofport": 3}}}}]}),
        json!({"id": 7, "result": [{"rows": [{"name": "br-int", "ports": ["set", [["uuid", "00000000-0000-0000-0000-000000000002"]]]}]}], "error": null}),
        json!({"id": 8, "result": null, "error": {"error": "constraint violation", "details": "x\"y"}}),
        json!(["uuid", "00000000-0000-0000-0000-000000000003"]),
        json!([
            "map",
            [["iface-id", "p1"], ["attached-mac", "00:11:22:33:44:55"]]
        ]),
    ]
}

fn mutate(r: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    const BYTES: &[u8] = b"{}[]\",:\\ 0123456789-eE.+truefalsnul\x00\xff\n";
    for _ in 0..=r.below(4) {
        let at = r.below(b.len() + 1);
        match r.below(3) {
            0 => b.insert(at, BYTES[r.below(BYTES.len())]),
            1 if at < b.len() => {
                b.remove(at);
            }
            _ if at < b.len() => b[at] = BYTES[r.below(BYTES.len())],
            _ => {}
        }
    }
    b
}

#[test]
fn frame_decoder_survives_any_stream_and_reassembles_valid_frames() {
    let mut r = Rng(0xf00d_0001);
    let seeds = seeds();
    // Valid frames in random chunks come out whole and in order.
    for _ in 0..500 {
        let frames: Vec<Value> = (0..1 + r.below(4))
            .map(|_| seeds[r.below(2) + 1].clone())
            .collect();
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|f| serde_json::to_vec(f).expect("encode"))
            .collect();
        let mut d = FrameDecoder::default();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let n = 1 + r.below(17);
            let end = (i + n).min(bytes.len());
            d.push(&bytes[i..end]);
            i = end;
            while let Some(v) = d.next_frame().expect("valid stream") {
                out.push(v);
            }
        }
        assert_eq!(out, frames);
    }
    // Garbage and mutated frames: values or errors, never a panic.
    for _ in 0..20_000 {
        let base = serde_json::to_vec(&seeds[r.below(seeds.len())]).expect("encode");
        let bytes = if r.below(4) == 0 {
            (0..r.below(64)).map(|_| r.next() as u8).collect()
        } else {
            mutate(&mut r, base)
        };
        let mut d = FrameDecoder::new(4096);
        for chunk in bytes.chunks(1 + r.below(9)) {
            d.push(chunk);
            match d.next_frame() {
                Ok(Some(v)) => {
                    let _ = Message::from_value(v.clone());
                    let _ = Atom::from_json(&v);
                    let _ = Datum::from_json(&v);
                    let _ = row_from_json(&v);
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
    }
}

#[test]
fn monitor_updates_never_panic_the_replica() {
    let schema = DbSchema::from_json(&json!({
        "name": "Open_vSwitch",
        "tables": {
            "Interface": {"columns": {
                "name": {"type": "string"},
                "ofport": {"type": {"key": "integer", "min": 0, "max": 1}},
                "external_ids": {"type": {"key": "string", "value": "string", "min": 0, "max": "unlimited"}}
            }}
        }
    }))
    .expect("schema");
    let uuid = "00000000-0000-0000-0000-00000000000a";
    let good = [
        json!({"Interface": {uuid: {"initial": {"name": "p1", "ofport": 1}}}}),
        json!({"Interface": {uuid: {"modify": {"ofport": ["set", []], "external_ids": ["map", [["iface-id", "p1"]]]}}}}),
        json!({"Interface": {uuid: {"delete": null}}}),
        json!({"Interface": {uuid: {"new": {"name": "p2"}, "old": {"name": "p1"}}}}),
    ];
    let mut r = Rng(0xf00d_0002);
    for _ in 0..10_000 {
        let mut replica = Replica::new(schema.clone());
        for _ in 0..3 {
            let base = serde_json::to_vec(&good[r.below(good.len())]).expect("encode");
            let bytes = mutate(&mut r, base);
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            let fmt = if r.below(2) == 0 {
                UpdateFormat::Update2
            } else {
                UpdateFormat::Update
            };
            let _ = replica.apply(fmt, &v);
            let _ = replica.reset(fmt, &v);
        }
    }
}
