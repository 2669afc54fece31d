//! Wire-frame costs on the server's hot path: decoding a client's `send` frame
//! (`schema::protocol::ClientFrame`) and encoding the `msg` and `ack` frames
//! (`schema::protocol::ServerFrame`), with a short and a long body.
//!
//! `cargo bench -p benches --bench frames`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use schema::protocol::{ClientFrame, ServerFrame, WireMessage};
use schema::{ConvId, UserId};

/// Body lengths: a chat line and close to the default 4000-character limit.
const BODIES: [usize; 2] = [64, 3900];

fn send_frame(body_len: usize) -> String {
    let body = "x".repeat(body_len);
    format!(r#"{{"type":"send","id":"lg0-123456","conv":"d:1001:1002","body":"{body}"}}"#)
}

fn msg(body_len: usize) -> ServerFrame {
    ServerFrame::Msg {
        msg: WireMessage {
            conv: ConvId("d:1001:1002".into()),
            seq: 123_456,
            from: UserId(1001),
            id: "lg0-123456".into(),
            kind: "text".into(),
            body: Some("x".repeat(body_len)),
            ts: 1_764_000_000_000,
            mentions: vec![],
            mention_all: false,
            recalled: false,
            ..WireMessage::default()
        },
        silent: false,
        mentioned: false,
    }
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_frame_parse_send");
    for len in BODIES {
        let text = send_frame(len);
        // The frame must be what the server accepts.
        match serde_json::from_str::<ClientFrame>(&text) {
            Ok(ClientFrame::Send { body, .. }) if body.len() == len => {}
            other => panic!("bench frame does not parse as a send: {other:?}"),
        }
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &text, |b, text| {
            b.iter(|| serde_json::from_str::<ClientFrame>(black_box(text)))
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_frame_encode_msg");
    for len in BODIES {
        let frame = msg(len);
        g.throughput(Throughput::Bytes(frame.encode().len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(len), &frame, |b, frame| b.iter(|| black_box(frame).encode()));
    }
    g.finish();
    let ack = ServerFrame::Ack { id: "lg0-123456".into(), conv: ConvId("d:1001:1002".into()), seq: 123_456, ts: 1 };
    c.bench_function("server_frame_encode_ack", |b| b.iter(|| black_box(&ack).encode()));
}

criterion_group!(frames, decode, encode);
criterion_main!(frames);
