//! Whether a TCP port listens in a container's network namespace, without
//! connecting to the service: by a sock_diag (`ss -lt`) request, which
//! walks only the kernel's listening sockets (~20 µs), from a netlink
//! socket made in the service's namespace; where the runner cannot enter
//! that namespace (rootless: it belongs to another user namespace), by
//! /proc/PID/net/tcp{,6}, which walks every TCP socket of the host (a few
//! ms per read on a big table).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `1 << TCP_LISTEN`.
const LISTEN_STATES: u32 = 1 << 10;

/// How to look at one service's listening ports.
pub enum TcpProbe {
    /// A sock_diag socket in the service's network namespace.
    Diag(OwnedFd),
    /// The pid of a process in it, for /proc/PID/net/tcp{,6}.
    Proc(u32),
}

impl TcpProbe {
    /// A probe for the network namespace of `pid`.
    pub fn new(pid: u32) -> TcpProbe {
        diag_socket(pid).map_or(TcpProbe::Proc(pid), TcpProbe::Diag)
    }

    /// Whether something listens on `port` (IPv4 or IPv6).
    pub fn listening(&self, port: u16) -> bool {
        match self {
            TcpProbe::Diag(socket) => [libc::AF_INET, libc::AF_INET6]
                .iter()
                .any(|&family| dump_listening(socket, family as u8).contains(&port)),
            TcpProbe::Proc(pid) => ["tcp", "tcp6"].iter().any(|table| {
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
                    .is_ok_and(|text| listens_on(&text, port))
            }),
        }
    }
}

/// A sock_diag socket made in the network namespace of `pid`, by a thread
/// of its own (a namespace is per thread; a socket keeps the one it was
/// made in).
fn diag_socket(pid: u32) -> Option<OwnedFd> {
    let namespace = File::open(format!("/proc/{pid}/ns/net")).ok()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET).ok()?;
                socket(
                    AddressFamily::Netlink,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    SockProtocol::NetlinkSockDiag,
                )
                .ok()
            })
            .join()
            .ok()
            .flatten()
    })
}

/// The local ports of the listening TCP sockets of `family`; empty when
/// the request fails.
fn dump_listening(socket: &OwnedFd, family: u8) -> Vec<u16> {
    if send(socket.as_raw_fd(), &request(family), MsgFlags::empty()).is_err() {
        return Vec::new();
    }
    let mut ports = Vec::new();
    let mut buffer = vec![0u8; 32 * 1024];
    while let Ok(len) = recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
        if len == 0 || !collect_ports(&buffer[..len], &mut ports) {
            break;
        }
    }
    ports
}

/// SOCK_DIAG_BY_FAMILY, dump: an inet_diag_req_v2 for TCP sockets of
/// `family` in the LISTEN state.
fn request(family: u8) -> Vec<u8> {
    let mut message = Vec::with_capacity(72);
    message.extend_from_slice(&72u32.to_ne_bytes());
    message.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&[0; 8]); // sequence, port id
    message.extend_from_slice(&[family, libc::IPPROTO_TCP as u8, 0, 0]);
    message.extend_from_slice(&LISTEN_STATES.to_ne_bytes());
    message.resize(72, 0); // inet_diag_sockid: any
    message
}

/// Adds the source ports of the inet_diag_msg replies in `reply` to
/// `ports`; false once the dump is over (done, or an error).
fn collect_ports(reply: &[u8], ports: &mut Vec<u16>) -> bool {
    let mut rest = reply;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if kind == NLMSG_DONE || kind == NLMSG_ERROR || len < 16 || len > rest.len() {
            return false;
        }
        // inet_diag_msg: family, state, timer, retrans, then the socket
        // id, whose first field is the source port in network order.
        if let Some(port) = rest.get(20..22) {
            ports.push(u16::from_be_bytes([port[0], port[1]]));
        }
        rest = &rest[((len + 3) & !3).min(rest.len())..];
    }
    true
}

/// Whether a /proc/net/tcp table has a LISTEN (`0A`) socket on `port`.
fn listens_on(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = fields.next().unwrap_or_default();
        let state = fields.nth(1).unwrap_or_default();
        let local_port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        state == "0A" && local_port == Some(port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   108        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:18EB 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";

    #[test]
    fn only_listening_sockets_count() {
        assert!(listens_on(TABLE, 5432));
        // 0x18EB = 6379 is an established connection, not a listener.
        assert!(!listens_on(TABLE, 6379));
        assert!(!listens_on("header only\n", 5432));
        let v6 = "sl local rem st\n 0: 00000000000000000000000000000000:18EB 00000000000000000000000000000000:0000 0A 0\n";
        assert!(listens_on(v6, 6379));
    }

    #[test]
    fn requests_ask_for_tcp_listeners_of_a_family() {
        let message = request(libc::AF_INET6 as u8);
        assert_eq!(message.len(), 72);
        assert_eq!(u16::from_ne_bytes([message[4], message[5]]), 20);
        assert_eq!(u16::from_ne_bytes([message[6], message[7]]), 0x301);
        assert_eq!(&message[16..18], &[libc::AF_INET6 as u8, 6]);
        assert_eq!(&message[20..24], &(1u32 << 10).to_ne_bytes());
    }

    #[test]
    fn replies_give_their_source_ports_until_done() {
        let diag = |port: u16| {
            let mut m = vec![0u8; 88];
            m[0..4].copy_from_slice(&88u32.to_ne_bytes());
            m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
            m[16] = libc::AF_INET as u8;
            m[17] = 10;
            m[20..22].copy_from_slice(&port.to_be_bytes());
            m
        };
        let mut reply = diag(5432);
        reply.extend(diag(6379));
        let mut ports = Vec::new();
        assert!(collect_ports(&reply, &mut ports));
        assert_eq!(ports, [5432, 6379]);
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        assert!(!collect_ports(&done, &mut ports));
        assert_eq!(ports.len(), 2);
    }

    #[test]
    fn a_listener_in_our_own_namespace_is_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let probe = TcpProbe::new(std::process::id());
        if nix::unistd::geteuid().is_root() {
            assert!(
                matches!(probe, TcpProbe::Diag(_)),
                "root can enter a namespace"
            );
        }
        assert!(probe.listening(port));
        drop(listener);
        assert!(!probe.listening(port));
    }
}
