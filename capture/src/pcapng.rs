//! A hand-written pcapng writer: one section, one raw-IP interface, a Decryption Secrets Block
//! with the TLS key log, and one Enhanced Packet Block per synthesized TCP/IP packet.
//!
//! Format: draft-ietf-opsawg-pcapng (Section Header 0x0A0D0D0A, Interface Description 1,
//! Enhanced Packet 6, Decryption Secrets 0x0A with secrets type `TLSK` 0x544c534b).

use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use crate::{Capture, Conversation, Segment, Side};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const DSB: u32 = 0x0000_000A;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Raw IP: each packet begins with an IPv4 or IPv6 header, told apart by its version nibble.
const LINKTYPE_RAW: u16 = 101;
const SECRETS_TLS_KEY_LOG: u32 = 0x544c_534b;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// Data segments are cut to this size, well under the 64 KiB an IP packet can carry.
const MAX_SEGMENT: usize = 16 * 1024;

/// Writes `capture` as pcapng: the key log first (Wireshark must know the secrets before the
/// packets they decrypt), then every packet of every conversation in time order. Each
/// conversation opens with a synthesized SYN, SYN-ACK, ACK at its `opened_at_us`; its data,
/// FINs and resets follow with correct sequence and acknowledgement numbers.
pub fn write_pcapng(out: &mut impl Write, capture: &Capture) -> io::Result<()> {
    let mut shb_body = Vec::new();
    shb_body.extend(BYTE_ORDER_MAGIC.to_le_bytes());
    shb_body.extend(1u16.to_le_bytes());
    shb_body.extend(0u16.to_le_bytes());
    // Section length unknown.
    shb_body.extend((-1i64).to_le_bytes());
    option(&mut shb_body, SHB_USERAPPL, b"handshake-matrix");
    option(&mut shb_body, OPT_END, &[]);
    block(out, SHB, &shb_body)?;

    let mut idb_body = Vec::new();
    idb_body.extend(LINKTYPE_RAW.to_le_bytes());
    idb_body.extend(0u16.to_le_bytes());
    // No snapshot limit. Timestamps are in microseconds, the default resolution.
    idb_body.extend(0u32.to_le_bytes());
    block(out, IDB, &idb_body)?;

    if !capture.key_log.is_empty() {
        let secrets = capture.key_log.as_bytes();
        let mut dsb_body = Vec::new();
        dsb_body.extend(SECRETS_TLS_KEY_LOG.to_le_bytes());
        dsb_body.extend((secrets.len() as u32).to_le_bytes());
        dsb_body.extend(secrets);
        pad(&mut dsb_body);
        block(out, DSB, &dsb_body)?;
    }

    let mut packets: Vec<Packet> = capture.conversations.iter().flat_map(packets).collect();
    // Stable: packets of one conversation keep their order at equal times.
    packets.sort_by_key(|p| p.at_us);
    for p in &packets {
        let mut body = Vec::new();
        body.extend(0u32.to_le_bytes());
        body.extend(((p.at_us >> 32) as u32).to_le_bytes());
        body.extend((p.at_us as u32).to_le_bytes());
        body.extend((p.bytes.len() as u32).to_le_bytes());
        body.extend((p.bytes.len() as u32).to_le_bytes());
        body.extend(&p.bytes);
        pad(&mut body);
        if let Some(comment) = &p.comment {
            option(&mut body, OPT_COMMENT, comment.as_bytes());
            option(&mut body, OPT_END, &[]);
        }
        block(out, EPB, &body)?;
    }
    Ok(())
}

fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (body.len() + 12) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend(code.to_le_bytes());
    body.extend((value.len() as u16).to_le_bytes());
    body.extend(value);
    pad(body);
}

fn pad(body: &mut Vec<u8>) {
    body.resize(body.len().next_multiple_of(4), 0);
}

struct Packet {
    at_us: u64,
    bytes: Vec<u8>,
    comment: Option<String>,
}

/// One conversation's packets, each timestamped no earlier than the one before it.
fn packets(c: &Conversation) -> Vec<Packet> {
    let mut flow = Flow::new(c);
    let mut out = Vec::new();
    let mut clock = c.opened_at_us;
    let syn = flow.segment(Side::Client, SYN, &[]);
    out.push(Packet {
        at_us: clock,
        bytes: syn,
        comment: Some(format!("connection {}", c.id)),
    });
    for (from, flags) in [(Side::Server, SYN | ACK), (Side::Client, ACK)] {
        out.push(Packet {
            at_us: clock,
            bytes: flow.segment(from, flags, &[]),
            comment: None,
        });
    }
    for e in &c.events {
        clock = clock.max(e.at_us);
        match &e.segment {
            Segment::Data(data) => {
                for chunk in data.chunks(MAX_SEGMENT) {
                    out.push(Packet {
                        at_us: clock,
                        bytes: flow.segment(e.from, PSH | ACK, chunk),
                        comment: None,
                    });
                }
            }
            Segment::Fin => out.push(Packet {
                at_us: clock,
                bytes: flow.segment(e.from, FIN | ACK, &[]),
                comment: None,
            }),
            Segment::Reset => out.push(Packet {
                at_us: clock,
                bytes: flow.segment(e.from, RST | ACK, &[]),
                comment: None,
            }),
        }
    }
    out
}

/// The TCP state needed to number segments: each side's address and next sequence number.
struct Flow {
    addr: [SocketAddr; 2],
    next_seq: [u32; 2],
}

impl Flow {
    fn new(c: &Conversation) -> Self {
        let (client, server) = same_family(c.client, c.server);
        // Arbitrary initial sequence numbers, distinct per connection; Wireshark shows them
        // relative to the SYN anyway.
        let isn = (c.id as u32).wrapping_mul(0x9E37_79B9);
        Self {
            addr: [client, server],
            next_seq: [isn, !isn],
        }
    }

    fn index(side: Side) -> usize {
        match side {
            Side::Client => 0,
            Side::Server => 1,
        }
    }

    /// One IP packet from `from` with `flags` and `payload`, advancing its sequence number.
    fn segment(&mut self, from: Side, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (me, peer) = (Self::index(from), Self::index(from.peer()));
        let seq = self.next_seq[me];
        let ack = if flags & ACK != 0 {
            self.next_seq[peer]
        } else {
            0
        };
        let consumed = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.next_seq[me] = seq.wrapping_add(consumed);
        let (src, dst) = (self.addr[me], self.addr[peer]);
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend(src.port().to_be_bytes());
        tcp.extend(dst.port().to_be_bytes());
        tcp.extend(seq.to_be_bytes());
        tcp.extend(ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend(u16::MAX.to_be_bytes());
        tcp.extend([0, 0]); // checksum, below
        tcp.extend([0, 0]); // urgent pointer
        tcp.extend(payload);
        let sum = tcp_checksum(src.ip(), dst.ip(), &tcp);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        ip_packet(src.ip(), dst.ip(), &tcp)
    }
}

/// Both addresses in one IP family: an IPv4 one becomes IPv4-mapped IPv6 if the other is IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

fn ip_packet(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + tcp.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.push(0x45);
            p.push(0);
            p.extend(((20 + tcp.len()) as u16).to_be_bytes());
            p.extend([0, 0]); // identification
            p.extend(0x4000u16.to_be_bytes()); // don't fragment
            p.push(64);
            p.push(6);
            p.extend([0, 0]); // checksum, below
            p.extend(s.octets());
            p.extend(d.octets());
            let sum = checksum(0, &p);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        _ => {
            let (s, d) = (v6_of(src), v6_of(dst));
            p.extend(0x6000_0000u32.to_be_bytes());
            p.extend((tcp.len() as u16).to_be_bytes());
            p.push(6);
            p.push(64);
            p.extend(s.octets());
            p.extend(d.octets());
        }
    }
    p.extend(tcp);
    p
}

fn v6_of(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn tcp_checksum(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend(s.octets());
            pseudo.extend(d.octets());
            pseudo.extend([0, 6]);
            pseudo.extend((tcp.len() as u16).to_be_bytes());
        }
        _ => {
            pseudo.extend(v6_of(src).octets());
            pseudo.extend(v6_of(dst).octets());
            pseudo.extend((tcp.len() as u32).to_be_bytes());
            pseudo.extend([0, 0, 0, 6]);
        }
    }
    let partial = sum16(0, &pseudo);
    checksum(partial, tcp)
}

fn sum16(mut acc: u32, bytes: &[u8]) -> u32 {
    for pair in bytes.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u32::from(word);
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc
}

/// The Internet checksum (RFC 1071) of `bytes`, continuing from a partial sum.
fn checksum(partial: u32, bytes: &[u8]) -> u16 {
    let mut acc = sum16(partial, bytes);
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// The checksum over `bytes` (0 when `bytes` include a correct checksum), for the tests.
#[cfg(test)]
pub(crate) fn tests_checksum(bytes: &[u8]) -> u16 {
    checksum(0, bytes)
}
