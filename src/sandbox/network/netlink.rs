//! A small rtnetlink client: the handful of requests a test's network
//! needs (create a bridge or a veth pair, set a link up or under a bridge,
//! add an IPv4 address or a default route), each acknowledged by the
//! kernel. The socket talks to the network namespace it was created in.
//!
//! Hand-rolled rather than a crate: rtnetlink pulls tokio; neli's typed
//! builders cost more lines than these few fixed messages, and every
//! message here is checked by a unit test against its byte layout.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const IFF_UP: u32 = libc::IFF_UP as u32;

/// A netlink route socket in the namespace it was opened in.
pub struct Netlink {
    socket: OwnedFd,
    sequence: u32,
}

impl Netlink {
    pub fn open() -> nix::Result<Netlink> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        Ok(Netlink {
            socket,
            sequence: 0,
        })
    }

    /// `ip link add NAME type bridge`.
    pub fn create_bridge(&mut self, name: &str) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.ifinfo(0, 0);
        message.attr(IFLA_IFNAME, &c_name(name));
        let info = message.begin(IFLA_LINKINFO);
        message.attr(IFLA_INFO_KIND, b"bridge");
        message.end(info);
        self.request(message)
    }

    /// `ip link add NAME type veth peer name PEER netns PEER_NAMESPACE`.
    pub fn create_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_namespace: BorrowedFd<'_>,
    ) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        message.ifinfo(0, 0);
        message.attr(IFLA_IFNAME, &c_name(name));
        let info = message.begin(IFLA_LINKINFO);
        message.attr(IFLA_INFO_KIND, b"veth");
        let data = message.begin(IFLA_INFO_DATA);
        let peer_info = message.begin(VETH_INFO_PEER);
        message.ifinfo(0, 0);
        message.attr(IFLA_IFNAME, &c_name(peer));
        let fd = peer_namespace.as_raw_fd() as u32;
        message.attr(IFLA_NET_NS_FD, &fd.to_ne_bytes());
        message.end(peer_info);
        message.end(data);
        message.end(info);
        self.request(message)
    }

    /// `ip link set NAME up [master MASTER]`, MASTER given by its index.
    pub fn set_up(&mut self, name: &str, master: Option<u32>) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.ifinfo(IFF_UP, IFF_UP);
        message.attr(IFLA_IFNAME, &c_name(name));
        if let Some(master) = master {
            message.attr(IFLA_MASTER, &master.to_ne_bytes());
        }
        self.request(message)
    }

    /// `ip link set NAME down`.
    pub fn set_down(&mut self, name: &str) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWLINK, 0);
        message.ifinfo(0, IFF_UP);
        message.attr(IFLA_IFNAME, &c_name(name));
        self.request(message)
    }

    /// `ip addr add ADDRESS/PREFIX dev INDEX`.
    pub fn add_address(&mut self, index: u32, address: [u8; 4], prefix: u8) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        message.push(&[libc::AF_INET as u8, prefix, 0, 0]);
        message.push(&index.to_ne_bytes());
        message.attr(IFA_LOCAL, &address);
        message.attr(IFA_ADDRESS, &address);
        self.request(message)
    }

    /// `ip route add default via GATEWAY`.
    pub fn add_default_route(&mut self, gateway: [u8; 4]) -> nix::Result<()> {
        let mut message = Message::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        // family, dst_len, src_len, tos, table, protocol, scope, type, flags
        message.push(&[libc::AF_INET as u8, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0]);
        message.push(&[RTN_UNICAST, 0, 0, 0, 0]);
        message.attr(RTA_GATEWAY, &gateway);
        self.request(message)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, mut message: Message) -> nix::Result<()> {
        self.sequence += 1;
        message.finish(self.sequence);
        sendto(
            self.socket.as_raw_fd(),
            &message.bytes,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )?;
        let mut reply = [0u8; 4096];
        loop {
            let len = recv(self.socket.as_raw_fd(), &mut reply, MsgFlags::empty())?;
            if let Some(result) = acknowledgement(&reply[..len], self.sequence) {
                return result;
            }
        }
    }
}

/// The result an NLMSG_ERROR reply carries for request `sequence`, or
/// None when `reply` holds no such message.
fn acknowledgement(reply: &[u8], sequence: u32) -> Option<nix::Result<()>> {
    let mut rest = reply;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        let seq = u32::from_ne_bytes(rest[8..12].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        if kind == NLMSG_ERROR && seq == sequence && len >= 20 {
            let code = i32::from_ne_bytes(rest[16..20].try_into().ok()?);
            return Some(if code == 0 {
                Ok(())
            } else {
                Err(Errno::from_raw(-code))
            });
        }
        rest = &rest[align(len).min(rest.len())..];
    }
    None
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn c_name(name: &str) -> Vec<u8> {
    let mut bytes = name.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// One request being built: header, fixed part, attributes.
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16) -> Message {
        let mut bytes = vec![0u8; 16];
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        bytes[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Message { bytes }
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    /// An ifinfomsg: family unspecified, index 0 (links go by name).
    fn ifinfo(&mut self, flags: u32, change: u32) {
        self.push(&[0, 0, 0, 0]);
        self.push(&0i32.to_ne_bytes());
        self.push(&flags.to_ne_bytes());
        self.push(&change.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let start = self.begin(kind);
        self.push(data);
        self.end(start);
    }

    /// Starts an attribute whose payload follows; returns its offset.
    fn begin(&mut self, kind: u16) -> usize {
        let start = self.bytes.len();
        self.push(&[0, 0]);
        self.push(&kind.to_ne_bytes());
        start
    }

    /// Ends the attribute at `start`: its length, then padding.
    fn end(&mut self, start: usize) {
        let len = (self.bytes.len() - start) as u16;
        self.bytes[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.bytes.resize(align(self.bytes.len()), 0);
    }

    fn finish(&mut self, sequence: u32) {
        let len = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        self.bytes[8..12].copy_from_slice(&sequence.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_length_prefixed_and_padded() {
        let mut message = Message::new(RTM_NEWLINK, NLM_F_CREATE);
        message.ifinfo(0, 0);
        message.attr(IFLA_IFNAME, b"br0\0");
        let info = message.begin(IFLA_LINKINFO);
        message.attr(IFLA_INFO_KIND, b"bridge");
        message.end(info);
        message.finish(7);
        let b = &message.bytes;
        assert_eq!(b.len(), 16 + 16 + 8 + 4 + 12);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()),
            b.len() as u32
        );
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), RTM_NEWLINK);
        let flags = u16::from_ne_bytes(b[6..8].try_into().unwrap());
        assert_eq!(flags, NLM_F_CREATE | NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // IFLA_IFNAME: length 8 (4 header + "br0\0"), no padding needed.
        assert_eq!(&b[32..36], &[8, 0, 3, 0]);
        // IFLA_LINKINFO nests IFLA_INFO_KIND "bridge" (len 10, padded to 12).
        assert_eq!(&b[40..44], &[16, 0, 18, 0]);
        assert_eq!(&b[44..48], &[10, 0, 1, 0]);
        assert_eq!(&b[48..54], b"bridge");
        assert_eq!(&b[54..56], &[0, 0]);
    }

    #[test]
    fn acknowledgements_carry_errno() {
        let reply = |code: i32, seq: u32| {
            let mut bytes = vec![0u8; 36];
            bytes[0..4].copy_from_slice(&36u32.to_ne_bytes());
            bytes[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
            bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
            bytes[16..20].copy_from_slice(&code.to_ne_bytes());
            bytes
        };
        assert_eq!(acknowledgement(&reply(0, 3), 3), Some(Ok(())));
        assert_eq!(
            acknowledgement(&reply(-libc::EEXIST, 3), 3),
            Some(Err(Errno::EEXIST))
        );
        assert_eq!(acknowledgement(&reply(0, 2), 3), None);
        assert_eq!(acknowledgement(&[1, 2, 3], 3), None);
    }
}
