//! The kernel filter: a classic BPF program, generated here (no libpcap), that passes only the
//! TCP segments of the capture's targets.
//!
//! A target is the canary's end of a flow, (remote IP, port). A segment passes when
//! `(src ip == target ip && src port == target port) || (dst ip == target ip && dst port ==
//! target port)` for some target: both directions of the probe's connections, nothing of other
//! services on the same host. IPv4 with any header length (options) and IPv6 with TCP as the
//! next header (segments behind IPv6 extension headers are not passed; the probe's own
//! connections carry none). Non-first IPv4 fragments carry no TCP header and are rejected.
//!
//! On `lo` every packet is seen twice (outgoing and incoming copy): the program drops the
//! `PACKET_OUTGOING` copy, read through the ancillary load `SKF_AD_OFF + SKF_AD_PKTTYPE`.
//! Elsewhere it keeps both directions. Accepted packets are cut to [`SNAP_LEN`] bytes, enough
//! for the largest Ethernet + IPv4 + TCP headers (14 + 60 + 60); the payload never leaves the
//! kernel.
//!
//! For `dst 127.0.0.1:8080` on `lo` the program reads like tcpdump's for
//! `inbound and tcp and host 127.0.0.1 and port 8080` (`tcpdump -d -i lo ...`): `ldh [type]`,
//! `jeq #4`, `ldh [12]`, `jeq #0x800`, `ldb [23]`, `jeq #6`, `ldh [20]`, `jset #0x1fff`,
//! `ldxb 4*([14]&0xf)`, `ldh [x + 14]` / `ldh [x + 16]`; ours then pairs each address with its
//! port instead of accepting any address with any port.
//!
//! Shape and size. Classic BPF jumps are 8-bit, so each target's block is self-contained (it
//! ends with its own `ret #SNAP_LEN`) and the family sections are skipped with `ja`, whose
//! offset is 32-bit. The kernel converts the program to eBPF, where each packet load becomes
//! about 14 instructions (bounds check, helper call), and charges the result to the socket's
//! option memory (`net.core.optmem_max`; replacing a filter briefly charges both). So the
//! addresses and ports are loaded once into scratch memory (`st M[k]`) and each target only
//! compares against `ld M[k]`, which converts to one instruction: a target costs about 26 eBPF
//! instructions (IPv6) instead of about 140.

use std::net::IpAddr;

use super::parse::Link;

/// Bytes of an accepted packet the kernel queues: headers only.
pub(crate) const SNAP_LEN: u32 = 160;

/// Targets one interface's filter holds. An IPv6 target takes 21 instructions, so 128 of them
/// (2,700 instructions) stay inside the kernel's limit of 4,096 (`BPF_MAXINSNS`). Option
/// memory is the other limit: with `net.core.optmem_max` at 128 KiB (recent kernels' default)
/// 128 IPv6 targets attach; at 20 KiB (older kernels' default, Debian 12's 6.1 among them) the
/// attach fails with ENOMEM past 49 IPv6 targets (measured on 6.18 with it set so), and the
/// error says to raise it.
pub(crate) const MAX_TARGETS: usize = 128;

/// The remote end of traced flows: the canary's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Target {
    pub ip: IpAddr,
    pub port: u16,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// Opcodes, from the kernel's classes, sizes and modes (linux/filter.h, linux/bpf_common.h).
const fn opcode(bits: u32) -> u16 {
    bits as u16
}
pub(crate) const LD_W_ABS: u16 = opcode(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS);
pub(crate) const LD_H_ABS: u16 = opcode(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS);
pub(crate) const LD_B_ABS: u16 = opcode(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS);
pub(crate) const LD_H_IND: u16 = opcode(libc::BPF_LD | libc::BPF_H | libc::BPF_IND);
pub(crate) const LDX_B_MSH: u16 = opcode(libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH);
pub(crate) const JMP_JA: u16 = opcode(libc::BPF_JMP | libc::BPF_JA);
pub(crate) const JMP_JEQ_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K);
pub(crate) const JMP_JSET_K: u16 = opcode(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K);
pub(crate) const RET_K: u16 = opcode(libc::BPF_RET | libc::BPF_K);
pub(crate) const LD_MEM: u16 = opcode(libc::BPF_LD | libc::BPF_MEM);
pub(crate) const ST: u16 = opcode(libc::BPF_ST);

/// Ancillary loads: offsets at or above `SKF_AD_OFF` read skb metadata, not packet bytes.
pub(crate) const AD_PROTOCOL: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
pub(crate) const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;
/// `PACKET_OUTGOING` from linux/if_packet.h (libc has no constant).
pub(crate) const PACKET_OUTGOING: u32 = 4;

const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86dd;
const IPPROTO_TCP: u32 = 6;

/// The program for an interface with `link` framing and these targets. `drop_outgoing` is for
/// `lo`. With no targets it rejects everything.
pub(crate) fn program(link: Link, drop_outgoing: bool, targets: &[Target]) -> Vec<Insn> {
    let mut a = Asm::default();
    let l = link.header_len() as u32;
    if drop_outgoing {
        a.op(LD_H_ABS, AD_PKTTYPE);
        a.skip_unless_eq(PACKET_OUTGOING, 1);
        a.op(RET_K, 0);
    }
    let v4: Vec<_> = targets.iter().filter(|t| t.ip.is_ipv4()).collect();
    let v6: Vec<_> = targets.iter().filter(|t| t.ip.is_ipv6()).collect();
    if !v4.is_empty() || !v6.is_empty() {
        // The EtherType; raw-IP links have none in the frame, the skb's protocol says the same.
        match link {
            Link::Ethernet => a.op(LD_H_ABS, 12),
            Link::RawIp => a.op(LD_H_ABS, AD_PROTOCOL),
        }
    }
    // Each section: `jeq #ethertype` falls into it, otherwise `ja` over it; it ends in `ret`, so
    // the accumulator still holds the EtherType at the next section's `jeq`.
    if !v4.is_empty() {
        let section = ipv4_section(l, &v4);
        a.op_jump(JMP_JEQ_K, ETH_P_IP, 1, 0);
        a.op(JMP_JA, section.len() as u32);
        a.insns.extend(section);
    }
    if !v6.is_empty() {
        let section = ipv6_section(l, &v6);
        a.op_jump(JMP_JEQ_K, ETH_P_IPV6, 1, 0);
        a.op(JMP_JA, section.len() as u32);
        a.insns.extend(section);
    }
    a.op(RET_K, 0);
    a.insns
}

fn ipv4_section(l: u32, targets: &[&Target]) -> Vec<Insn> {
    let mut a = Asm::default();
    a.op(LD_B_ABS, l + 9); // protocol
    a.skip_if_eq(IPPROTO_TCP, 1);
    a.op(RET_K, 0);
    a.op(LD_H_ABS, l + 6); // flags and fragment offset
    a.op_jump(JMP_JSET_K, 0x1fff, 0, 1); // a later fragment: no TCP header in it
    a.op(RET_K, 0);
    a.op(LDX_B_MSH, l); // x = IP header length
    // M[0] src ip, M[1] dst ip, M[2] src port, M[3] dst port. A load past the end of a short
    // packet ends the program with 0: rejected, as it should be.
    a.load_store(LD_W_ABS, l + 12, 0);
    a.load_store(LD_W_ABS, l + 16, 1);
    a.load_store(LD_H_IND, l, 2);
    a.load_store(LD_H_IND, l + 2, 3);
    for t in targets {
        let IpAddr::V4(ip) = t.ip else { continue };
        let ip = u32::from(ip);
        let port = u32::from(t.port);
        // 0 ld src; 1 jeq ip (no -> 4); 2 ld sport; 3 jeq port (yes -> 8)
        // 4 ld dst; 5 jeq ip (no -> 9); 6 ld dport; 7 jeq port (no -> 9); 8 ret #snap
        a.op(LD_MEM, 0);
        a.op_jump(JMP_JEQ_K, ip, 0, 2);
        a.op(LD_MEM, 2);
        a.op_jump(JMP_JEQ_K, port, 4, 0);
        a.op(LD_MEM, 1);
        a.op_jump(JMP_JEQ_K, ip, 0, 3);
        a.op(LD_MEM, 3);
        a.op_jump(JMP_JEQ_K, port, 0, 1);
        a.op(RET_K, SNAP_LEN);
    }
    a.op(RET_K, 0);
    a.insns
}

fn ipv6_section(l: u32, targets: &[&Target]) -> Vec<Insn> {
    let mut a = Asm::default();
    a.op(LD_B_ABS, l + 6); // next header
    a.skip_if_eq(IPPROTO_TCP, 1);
    a.op(RET_K, 0);
    // M[0..4] src address words, M[4..8] dst address words, M[8] src port, M[9] dst port.
    for i in 0..8 {
        a.load_store(LD_W_ABS, l + 8 + 4 * i, i);
    }
    a.load_store(LD_H_ABS, l + 40, 8);
    a.load_store(LD_H_ABS, l + 42, 9);
    for t in targets {
        let IpAddr::V6(ip) = t.ip else { continue };
        let words = ip
            .octets()
            .chunks_exact(4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .collect::<Vec<_>>();
        let port = u32::from(t.port);
        // Source half (10 instructions): four address words, then the port; a mismatch jumps
        // to the destination half, a full match to the block's final `ret`.
        for (i, w) in (0u32..).zip(&words) {
            a.op(LD_MEM, i);
            // Left in this half after this jeq: (3 - i) * 2 + 2.
            a.op_jump(JMP_JEQ_K, *w, 0, ((3 - i) * 2 + 2) as u8);
        }
        a.op(LD_MEM, 8);
        a.op_jump(JMP_JEQ_K, port, 10, 0); // over the destination half, to the ret
        // Destination half (10 instructions); a mismatch leaves the block (past the ret).
        for (i, w) in (0u32..).zip(&words) {
            a.op(LD_MEM, 4 + i);
            a.op_jump(JMP_JEQ_K, *w, 0, ((3 - i) * 2 + 3) as u8);
        }
        a.op(LD_MEM, 9);
        a.op_jump(JMP_JEQ_K, port, 0, 1);
        a.op(RET_K, SNAP_LEN);
    }
    a.op(RET_K, 0);
    a.insns
}

/// Appends instructions; jumps are relative to the next instruction, as in the kernel.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.op_jump(code, k, 0, 0);
    }

    fn op_jump(&mut self, code: u16, k: u32, jt: u8, jf: u8) {
        self.insns.push(Insn { code, jt, jf, k });
    }

    /// Loads a packet field and keeps it in scratch word `m`.
    fn load_store(&mut self, load: u16, k: u32, m: u32) {
        self.op(load, k);
        self.op(ST, m);
    }

    /// `jeq #k`: equal skips `n` instructions, otherwise go on.
    fn skip_if_eq(&mut self, k: u32, n: u8) {
        self.op_jump(JMP_JEQ_K, k, n, 0);
    }

    /// `jeq #k`: equal goes on, otherwise skips `n` instructions.
    fn skip_unless_eq(&mut self, k: u32, n: u8) {
        self.op_jump(JMP_JEQ_K, k, 0, n);
    }
}

/// The program as socket2 attaches it (`SO_ATTACH_FILTER`).
pub(crate) fn to_sock_filters(prog: &[Insn]) -> Vec<socket2::SockFilter> {
    prog.iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use pnet_packet::ethernet::EtherTypes;
    use pnet_packet::ip::IpNextHeaderProtocols;

    use super::super::parse::frames::*;
    use super::*;

    /// The skb metadata ancillary loads read.
    #[derive(Clone, Copy)]
    struct Meta {
        pkttype: u32,
        protocol: u32,
    }

    const HOST: u32 = 0; // PACKET_HOST

    /// A classic BPF interpreter for the opcodes [`program`] emits, with the kernel's rules:
    /// a load past the end of the packet ends the program with 0.
    fn run(prog: &[Insn], pkt: &[u8], meta: Meta) -> u32 {
        let load = |off: u32, size: usize| -> Option<u32> {
            if off >= libc::SKF_AD_OFF as u32 {
                return match off {
                    AD_PKTTYPE => Some(meta.pkttype),
                    AD_PROTOCOL => Some(meta.protocol),
                    _ => panic!("ancillary load {off:#x} not emulated"),
                };
            }
            let start = off as usize;
            let bytes = pkt.get(start..start.checked_add(size)?)?;
            Some(bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)))
        };
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let mut mem = [None::<u32>; libc::BPF_MEMWORDS as usize];
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                    let size = match i.code {
                        LD_W_ABS => 4,
                        LD_H_ABS => 2,
                        _ => 1,
                    };
                    match load(i.k, size) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                LD_H_IND => match load(x.wrapping_add(i.k), 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                LDX_B_MSH => match load(i.k, 1) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return 0,
                },
                LD_MEM => a = mem[i.k as usize].expect("the kernel rejects loads before stores"),
                ST => mem[i.k as usize] = Some(a),
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JMP_JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("opcode {other:#x} not emulated"),
            }
        }
    }

    fn meta_of(frame: &[u8], pkttype: u32) -> Meta {
        Meta {
            pkttype,
            protocol: u32::from(u16::from_be_bytes([frame[12], frame[13]])),
        }
    }

    fn eth(prog: &[Insn], frame: &[u8]) -> u32 {
        run(prog, frame, meta_of(frame, HOST))
    }

    const PROBE4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const CANARY4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);

    fn probe6() -> Ipv6Addr {
        "2001:db8::2".parse().unwrap()
    }
    fn canary6() -> Ipv6Addr {
        "2001:db8:1::80".parse().unwrap()
    }

    fn targets() -> Vec<Target> {
        vec![
            Target {
                ip: CANARY4.into(),
                port: 443,
            },
            Target {
                ip: canary6().into(),
                port: 8443,
            },
            Target {
                ip: Ipv4Addr::new(203, 0, 113, 9).into(),
                port: 80,
            },
        ]
    }

    #[test]
    fn accepts_both_directions_of_a_target_flow() {
        let prog = program(Link::Ethernet, false, &targets());
        for options in [0, 4, 40] {
            let out = eth_tcp4((PROBE4, 40000), (CANARY4, 443), 0x02, options);
            let inb = eth_tcp4((CANARY4, 443), (PROBE4, 40000), 0x12, options);
            assert_eq!(eth(&prog, &out), SNAP_LEN, "out, {options} option bytes");
            assert_eq!(eth(&prog, &inb), SNAP_LEN, "in, {options} option bytes");
        }
        let out6 = eth_tcp6((probe6(), 40000), (canary6(), 8443), 0x02);
        let in6 = eth_tcp6((canary6(), 8443), (probe6(), 40000), 0x14);
        assert_eq!(eth(&prog, &out6), SNAP_LEN);
        assert_eq!(eth(&prog, &in6), SNAP_LEN);
        // The last target too (a block's skips land on the next block).
        let other = eth_tcp4((PROBE4, 1), (Ipv4Addr::new(203, 0, 113, 9), 80), 0x10, 0);
        assert_eq!(eth(&prog, &other), SNAP_LEN);
    }

    #[test]
    fn rejects_other_ports_addresses_protocols() {
        let prog = program(Link::Ethernet, false, &targets());
        let cases = [
            (
                "other port",
                eth_tcp4((PROBE4, 40000), (CANARY4, 444), 0x02, 0),
            ),
            (
                "other address",
                eth_tcp4((PROBE4, 40000), (Ipv4Addr::new(192, 0, 2, 81), 443), 2, 0),
            ),
            // The target's port on our side, the target's address on the other: not its flow.
            (
                "port on the wrong end",
                eth_tcp4((CANARY4, 40000), (PROBE4, 443), 0x02, 0),
            ),
            (
                "v4 address, v6 target's port",
                eth_tcp4((PROBE4, 1), (CANARY4, 8443), 0x02, 0),
            ),
            (
                "other v6 port",
                eth_tcp6((probe6(), 40000), (canary6(), 443), 0x02),
            ),
            (
                "other v6 address",
                eth_tcp6((probe6(), 40000), (probe6(), 8443), 0x02),
            ),
            ("ARP", ethernet(EtherTypes::Arp, &[0u8; 28])),
        ];
        for (what, frame) in cases {
            assert_eq!(eth(&prog, &frame), 0, "{what}");
        }
        let udp = {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&40000u16.to_be_bytes());
            u[2..4].copy_from_slice(&443u16.to_be_bytes());
            ipv4(PROBE4, CANARY4, IpNextHeaderProtocols::Udp, 64, 0, &u)
        };
        assert_eq!(
            eth(&prog, &ethernet(EtherTypes::Ipv4, &udp)),
            0,
            "UDP to the port"
        );
        let udp6 = {
            let mut u = vec![0u8; 8];
            u[2..4].copy_from_slice(&8443u16.to_be_bytes());
            ipv6(probe6(), canary6(), IpNextHeaderProtocols::Udp, 64, &u)
        };
        assert_eq!(
            eth(&prog, &ethernet(EtherTypes::Ipv6, &udp6)),
            0,
            "UDP6 to the port"
        );
        let mut frag = eth_tcp4((PROBE4, 40000), (CANARY4, 443), 0x02, 0);
        frag[14 + 6..14 + 8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(eth(&prog, &frag), 0, "later fragment");
        let short = eth_tcp4((PROBE4, 40000), (CANARY4, 443), 0x02, 0);
        assert_eq!(eth(&prog, &short[..36]), 0, "truncated in the ports");
    }

    #[test]
    fn on_lo_outgoing_copies_are_dropped() {
        let lo = Ipv4Addr::LOCALHOST;
        let t = [Target {
            ip: lo.into(),
            port: 8080,
        }];
        let prog = program(Link::Ethernet, true, &t);
        let syn = eth_tcp4((lo, 40000), (lo, 8080), 0x02, 0);
        assert_eq!(run(&prog, &syn, meta_of(&syn, HOST)), SNAP_LEN);
        assert_eq!(run(&prog, &syn, meta_of(&syn, PACKET_OUTGOING)), 0);
        // Elsewhere both copies count: the outgoing one is the only copy of what we send.
        let prog = program(Link::Ethernet, false, &t);
        assert_eq!(run(&prog, &syn, meta_of(&syn, PACKET_OUTGOING)), SNAP_LEN);
    }

    #[test]
    fn raw_ip_links_have_no_ethernet_header() {
        let prog = program(Link::RawIp, false, &targets());
        let frame = eth_tcp4((CANARY4, 443), (PROBE4, 40000), 0x12, 4);
        let meta = meta_of(&frame, HOST);
        assert_eq!(run(&prog, &frame[14..], meta), SNAP_LEN);
        let frame6 = eth_tcp6((probe6(), 40000), (canary6(), 8443), 0x02);
        assert_eq!(run(&prog, &frame6[14..], meta_of(&frame6, HOST)), SNAP_LEN);
        let other = eth_tcp4((CANARY4, 444), (PROBE4, 40000), 0x12, 0);
        assert_eq!(run(&prog, &other[14..], meta_of(&other, HOST)), 0);
    }

    #[test]
    fn no_targets_rejects_all_and_the_cap_fits_the_kernel_limit() {
        let prog = program(Link::Ethernet, true, &[]);
        let syn = eth_tcp4((PROBE4, 40000), (CANARY4, 443), 0x02, 0);
        assert_eq!(eth(&prog, &syn), 0);
        let many: Vec<Target> = (0..MAX_TARGETS)
            .map(|i| Target {
                ip: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16).into(),
                port: 443,
            })
            .collect();
        let prog = program(Link::Ethernet, true, &many);
        assert!(
            prog.len() <= libc::BPF_MAXINSNS as usize,
            "{} instructions",
            prog.len()
        );
        let last = eth_tcp6((many[MAX_TARGETS - 1].ip_v6(), 443), (probe6(), 1), 0x12);
        assert_eq!(eth(&prog, &last), SNAP_LEN);
        let mixed: Vec<Target> = many
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if i % 2 == 0 {
                    *t
                } else {
                    Target {
                        ip: PROBE4.into(),
                        port: i as u16,
                    }
                }
            })
            .collect();
        let prog = program(Link::Ethernet, false, &mixed);
        let v4 = eth_tcp4((Ipv4Addr::new(10, 9, 9, 9), 5), (PROBE4, 127), 0x02, 0);
        assert_eq!(eth(&prog, &v4), SNAP_LEN);
        let v6 = eth_tcp6((probe6(), 5), (mixed[126].ip_v6(), 443), 0x02);
        assert_eq!(eth(&prog, &v6), SNAP_LEN);
    }

    impl Target {
        fn ip_v6(&self) -> Ipv6Addr {
            match self.ip {
                IpAddr::V6(ip) => ip,
                IpAddr::V4(_) => panic!("not v6"),
            }
        }
    }
}
