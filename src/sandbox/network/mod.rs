//! Private networks: a test and its services, each in a network namespace
//! of its own, joined by veth pairs to a bridge that lives in one more
//! namespace, the network's own (never the host's).
//!
//! - `holder`: the process that owns that namespace and its bridge, forked
//!   by the fork server; the namespace, bridge and every veth end in it go
//!   when it exits (the runner lets go, or dies: PDEATHSIG);
//! - `join`: what a container's init does to take its place on the bridge;
//! - `netlink`: the rtnetlink requests both need.
//!
//! Every network has the same private range, 10.89.0.0/24: they never
//! meet, so two tests each have their own `db` on port 5432.

mod holder;
mod netlink;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::net::if_::if_nametoindex;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{recv, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::pipe2;
use serde::{Deserialize, Serialize};

use super::server::{ForkServer, TestFds};
use super::spec::SetupFailure;
use super::step::Step;
use super::userns::IdMapping;

pub(super) use holder::{run_holder, NetworkReady, NetworkRequest};

/// The bridge in the network's namespace.
const BRIDGE: &str = "br0";
/// The container's side of its veth pair.
const INTERFACE: &str = "eth0";
/// The network's range: `10.89.0.0/24`, the bridge at `.1`.
pub const SUBNET: [u8; 3] = [10, 89, 0];
const PREFIX: u8 = 24;
pub const GATEWAY: [u8; 4] = [SUBNET[0], SUBNET[1], SUBNET[2], 1];

/// How a container joins a test's network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// `/proc/PID/ns/net` of the network's holder.
    pub namespace: Vec<u8>,
    /// Rootless: the holder's `/proc/PID/ns/user`, which the container
    /// joins instead of making a user namespace of its own (only that one
    /// has the right to plug into the bridge).
    pub user_namespace: Option<Vec<u8>>,
    /// The container's address; its last byte names the veth on the bridge.
    /// None: join `namespace` itself, another container's (a readiness
    /// check sees the service's own `localhost`).
    pub address: Option<[u8; 4]>,
    /// Route everything else through the bridge (`network = "outbound"`).
    pub default_route: bool,
    /// The container's /etc/hosts.
    pub hosts: Vec<u8>,
}

/// A test's network, as long as this lives: dropping it lets its holder
/// go, and the namespace goes with the holder and the last container.
pub struct Network {
    /// The holder's socket; closing it ends the holder.
    _holder: OwnedFd,
    pid: u32,
    rootless: bool,
    /// Outbound: the host's address on the uplink.
    pub host_address: Option<[u8; 4]>,
}

impl Network {
    /// How a container joins the network at `address`, seeing `hosts` as
    /// its /etc/hosts; `outbound`: with a route out by the uplink (when the
    /// network has one).
    pub fn attachment(&self, address: [u8; 4], hosts: &[u8], outbound: bool) -> NetworkAttachment {
        let path = |kind: &str| format!("/proc/{}/ns/{kind}", self.pid).into_bytes();
        NetworkAttachment {
            namespace: path("net"),
            user_namespace: self.rootless.then(|| path("user")),
            address: Some(address),
            default_route: outbound && self.host_address.is_some(),
            hosts: hosts.to_vec(),
        }
    }

    /// How a container joins the network namespace of another one, whose
    /// init is `init_pid`, seeing `hosts` as its /etc/hosts.
    pub fn beside(&self, init_pid: u32, hosts: &[u8]) -> NetworkAttachment {
        NetworkAttachment {
            namespace: format!("/proc/{init_pid}/ns/net").into_bytes(),
            address: None,
            ..self.attachment(GATEWAY, hosts, false)
        }
    }
}

/// Starts a network's holder through the fork server and waits until its
/// bridge is up.
pub(super) fn create(
    server: &ForkServer,
    request: &NetworkRequest,
) -> Result<Network, SetupFailure> {
    let (request_read, request_write) =
        pipe2(OFlag::O_CLOEXEC).step(|| "create the network request pipe".into())?;
    let (socket, holder_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .step(|| "create the network holder's socket".into())?;
    let null = File::open("/dev/null").step(|| "open /dev/null".into())?;
    server.submit_network(&TestFds {
        request: request_read.as_fd(),
        stdout: null.as_fd(),
        stderr: std::io::stderr().as_fd(),
        report: holder_end.as_fd(),
    })?;
    drop((request_read, holder_end));
    let json = serde_json::to_vec(request).expect("requests serialize");
    File::from(request_write)
        .write_all(&json)
        .step(|| "send the network request".into())?;
    let mut answer = vec![0u8; 64 * 1024];
    let len = recv(socket.as_raw_fd(), &mut answer, MsgFlags::empty())
        .step(|| "read the network holder's answer".into())?;
    let ready: Result<NetworkReady, SetupFailure> = serde_json::from_slice(&answer[..len])
        .map_err(|_| SetupFailure {
            step: "create the test's network".into(),
            cause: "its holder process ended without an answer".into(),
            hint: None,
            host_unsupported: false,
        })?;
    let ready = ready?;
    Ok(Network {
        _holder: socket,
        pid: ready.pid,
        rootless: request.user_namespace.is_some(),
        host_address: ready.host_address,
    })
}

/// Builds a throwaway network (for `isotest doctor`) through a fork server
/// of its own: a bridge, and with `outbound` an uplink veth pair to the
/// host with NAT; everything is gone when this returns.
pub fn probe(outbound: bool, user_namespace: Option<IdMapping>) -> Result<(), SetupFailure> {
    let server = ForkServer::default();
    let request = NetworkRequest {
        user_namespace,
        outbound,
    };
    create(&server, &request).map(drop)
}

/// The `n`th address of the network (`n` ≥ 2; `.1` is the bridge).
pub fn address(n: u8) -> [u8; 4] {
    [SUBNET[0], SUBNET[1], SUBNET[2], n]
}

/// `10.89.0.3`.
pub fn show_address(address: [u8; 4]) -> String {
    let [a, b, c, d] = address;
    format!("{a}.{b}.{c}.{d}")
}

/// In a container's init, before it unshares its other namespaces: a new
/// network namespace with `lo` up, and `eth0` on the test's bridge at the
/// attachment's address.
pub(super) fn join(attachment: &NetworkAttachment) -> Result<(), SetupFailure> {
    let path = String::from_utf8_lossy(&attachment.namespace).into_owned();
    let network = File::open(&path).step(|| format!("open the test's network {path}"))?;
    let Some(address) = attachment.address else {
        return setns(network.as_fd(), CloneFlags::CLONE_NEWNET)
            .step(|| format!("join the network namespace {path}"));
    };
    unshare(CloneFlags::CLONE_NEWNET).step(|| "unshare(CLONE_NEWNET)".into())?;
    let own = File::open("/proc/self/ns/net").step(|| "open /proc/self/ns/net".into())?;
    let veth = format!("veth{}", address[3]);
    setns(network.as_fd(), CloneFlags::CLONE_NEWNET)
        .step(|| format!("enter the test's network {path}"))?;
    let plugged = plug_into_bridge(&veth, &own);
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .step(|| "return to the container's network namespace".into())?;
    plugged?;
    super::net::bring_up_loopback()?;
    configure_interface(address, attachment.default_route)
}

/// In the network's namespace: a veth pair, `eth0` in the container's
/// namespace, the other end on the bridge.
fn plug_into_bridge(veth: &str, container: &File) -> Result<(), SetupFailure> {
    let mut link = netlink::Netlink::open().step(|| "open a netlink socket".into())?;
    link.create_veth(veth, INTERFACE, container.as_fd())
        .step(|| format!("create veth pair {veth} / {INTERFACE}"))?;
    let bridge = if_nametoindex(BRIDGE).step(|| format!("find bridge {BRIDGE}"))?;
    link.set_up(veth, Some(bridge))
        .step(|| format!("put {veth} on bridge {BRIDGE}"))
}

fn configure_interface(address: [u8; 4], default_route: bool) -> Result<(), SetupFailure> {
    let shown = show_address(address);
    let mut link = netlink::Netlink::open().step(|| "open a netlink socket".into())?;
    let index = if_nametoindex(INTERFACE).step(|| format!("find {INTERFACE}"))?;
    link.add_address(index, address, PREFIX)
        .step(|| format!("give {INTERFACE} address {shown}/{PREFIX}"))?;
    link.set_up(INTERFACE, None)
        .step(|| format!("bring up {INTERFACE}"))?;
    if default_route {
        link.add_default_route(GATEWAY)
            .step(|| format!("add a default route via {}", show_address(GATEWAY)))?;
    }
    Ok(())
}

/// Rootless: enters the network's user namespace (before the container's
/// other namespaces are made, so that it owns them).
pub(super) fn join_user_namespace(path: &[u8]) -> Result<(), SetupFailure> {
    let shown = String::from_utf8_lossy(path).into_owned();
    let namespace = File::open(&shown).step(|| format!("open {shown}"))?;
    setns(namespace.as_fd(), CloneFlags::CLONE_NEWUSER)
        .step(|| format!("join the test network's user namespace {shown}"))
}

/// /etc/hosts naming `localhost`, then every container of the network.
pub fn hosts_file(names: &[(String, [u8; 4])]) -> Vec<u8> {
    let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n");
    for (name, address) in names {
        text.push_str(&format!("{}\t{name}\n", show_address(*address)));
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_every_container() {
        let hosts = hosts_file(&[("test".into(), address(2)), ("db".into(), address(3))]);
        let text = String::from_utf8(hosts).unwrap();
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.89.0.2\ttest\n"));
        assert!(text.ends_with("10.89.0.3\tdb\n"));
    }
}
