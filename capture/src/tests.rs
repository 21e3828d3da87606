use std::net::SocketAddr;

use super::*;

fn conversation(id: u64, client: &str, server: &str) -> Conversation {
    let mut c = Conversation::new(id, client.parse().unwrap(), server.parse().unwrap(), 1_000);
    c.push(1_100, Side::Client, Segment::Data(b"hello".to_vec()));
    c.push(1_200, Side::Server, Segment::Data(vec![7; 40_000]));
    c.push(1_300, Side::Client, Segment::Reset);
    c
}

/// The blocks of a pcapng file: (type, body).
fn blocks(file: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < file.len() {
        let kind = u32::from_le_bytes(file[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        assert_eq!(
            len,
            len.next_multiple_of(4),
            "block lengths are multiples of 4"
        );
        let trailer = u32::from_le_bytes(file[at + len - 4..at + len].try_into().unwrap());
        assert_eq!(trailer as usize, len, "a block ends with its length");
        out.push((kind, file[at + 8..at + len - 4].to_vec()));
        at += len;
    }
    out
}

#[test]
fn a_file_has_the_header_the_secrets_and_every_packet_in_time_order() {
    let recorder = Recorder::default();
    recorder.push(conversation(2, "[::1]:50000", "[::1]:443"));
    recorder.push(conversation(1, "127.0.0.1:40000", "127.0.0.1:443"));
    recorder.key_log_secret("CLIENT_RANDOM", &[0xab; 32], &[0xcd; 48]);
    let mut file = Vec::new();
    write_pcapng(&mut file, &recorder.snapshot()).unwrap();
    let blocks = blocks(&file);
    let kinds: Vec<u32> = blocks.iter().map(|b| b.0).collect();
    // SHB, IDB, DSB, then per connection SYN, SYN-ACK, ACK, data 5 B, data 40000 B in 3
    // segments, RST: 8 packets each.
    assert_eq!(&kinds[..3], &[0x0A0D_0D0A, 1, 0x0A]);
    assert_eq!(kinds[3..].iter().filter(|&&k| k == 6).count(), 16);
    let dsb = &blocks[2].1;
    assert_eq!(&dsb[..4], &0x544c_534bu32.to_le_bytes());
    let line = format!("CLIENT_RANDOM {} {}\n", "ab".repeat(32), "cd".repeat(48));
    assert_eq!(&dsb[8..8 + line.len()], line.as_bytes());
    let times: Vec<u64> = blocks[3..]
        .iter()
        .map(|(_, b)| {
            let high = u32::from_le_bytes(b[4..8].try_into().unwrap());
            let low = u32::from_le_bytes(b[8..12].try_into().unwrap());
            (u64::from(high) << 32) | u64::from(low)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Every IPv4 header and every TCP segment checks out.
    for (_, b) in &blocks[3..] {
        let len = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
        let ip = &b[20..20 + len];
        if ip[0] >> 4 == 4 {
            assert_eq!(pcapng_checksum(&ip[..20]), 0);
            let mut pseudo = ip[12..20].to_vec();
            pseudo.extend([0, 6]);
            pseudo.extend(((len - 20) as u16).to_be_bytes());
            pseudo.extend(&ip[20..]);
            assert_eq!(pcapng_checksum(&pseudo), 0);
        }
    }
}

fn pcapng_checksum(bytes: &[u8]) -> u16 {
    pcapng::tests_checksum(bytes)
}

#[test]
fn nothing_is_sent_after_a_reset_or_by_a_side_after_its_fin() {
    let client: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let server: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let mut c = Conversation::new(1, client, server, 0);
    c.push(1, Side::Client, Segment::Fin);
    c.push(2, Side::Client, Segment::Data(b"late".to_vec()));
    c.push(3, Side::Server, Segment::Data(b"answer".to_vec()));
    c.push(4, Side::Server, Segment::Reset);
    c.push(5, Side::Server, Segment::Fin);
    let kinds: Vec<&Segment> = c.events.iter().map(|e| &e.segment).collect();
    assert_eq!(
        kinds,
        [
            &Segment::Fin,
            &Segment::Data(b"answer".to_vec()),
            &Segment::Reset
        ]
    );
}
