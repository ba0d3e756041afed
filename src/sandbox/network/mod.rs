//! Private networks: a test and its services, each in a network namespace
//! of its own, joined by veth pairs to a bridge that lives in one more
//! namespace, the network's own (never the host's).
//!
//! - `holder`: the process that owns that namespace and its bridge, forked
//!   by the server; the namespace, bridge and every veth end in it go
//!   when it exits (the runner lets go, or dies: PDEATHSIG);
//! - here: the runner's side (`create`, `Network`), and what a container's
//!   init does to take its place on the bridge (`join`);
//! - `netlink`: the rtnetlink requests both need;
//! - `slots`: container namespaces its holder prepares ahead of need;
//! - `listening`: whether a port listens in a container's namespace.
//!
//! Every test's network has the same private range, 10.89.0.0/24: they
//! never meet, so two tests each have their own `db` on port 5432. A run's
//! shared networks (`scope = "run"` services) have ranges of their own,
//! 10.90.0.0/16 up; a test using such a service gets a second link.

mod holder;
mod listening;
mod netlink;
mod slots;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::fcntl::OFlag;
use nix::net::if_::if_nametoindex;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{recv, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::unistd::pipe2;
use serde::{Deserialize, Serialize};

use super::server::{ForkServer, TestFds};
use super::spec::SetupFailure;
use super::step::Step;
use super::userns::IdMapping;

pub(super) use holder::{run_holder, NetworkReady, NetworkRequest};
pub use listening::TcpProbe;
use slots::{Shape, Slots};

/// The bridge in the network's namespace.
const BRIDGE: &str = "br0";

/// A network's range: `base` (host part zero) and its prefix length; the
/// bridge is the first address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub base: [u8; 4],
    pub prefix: u8,
}

impl Subnet {
    /// Every test's own network: `10.89.0.0/24`. They never meet, so each
    /// test has its own `db` at the same address.
    pub const PRIVATE: Subnet = Subnet {
        base: [10, 89, 0, 0],
        prefix: 24,
    };

    /// The `k`th network shared by a run (`scope = "run"` services):
    /// `10.(90 + k).0.0/16`, apart from the private one, so that a
    /// container on both routes each range by its own link.
    pub fn shared(k: u8) -> Subnet {
        Subnet {
            base: [10, 90u8.saturating_add(k), 0, 0],
            prefix: 16,
        }
    }

    /// The `n`th address (the bridge is 1).
    pub fn address(self, n: u32) -> [u8; 4] {
        (u32::from_be_bytes(self.base) | n).to_be_bytes()
    }

    pub fn gateway(self) -> [u8; 4] {
        self.address(1)
    }

    /// Host numbers a container may have: 2 up to the last before the
    /// broadcast address.
    pub fn hosts(self) -> u32 {
        (1u32 << (32 - self.prefix)) - 3
    }
}

/// How a container joins test networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Its links, `eth0` first; the bridges they plug into.
    pub links: Vec<Link>,
    /// Join this network namespace (`/proc/PID/ns/net` of a running
    /// container) instead of making one: a service's readiness command
    /// sees the service's own `localhost`.
    pub beside: Option<Vec<u8>>,
    /// Rootless: the `/proc/PID/ns/user` of the network's holder, which the
    /// container joins instead of making a user namespace of its own (only
    /// that one has the right to plug into the bridge).
    pub user_namespace: Option<Vec<u8>>,
    /// The container's /etc/hosts.
    pub hosts: Vec<u8>,
}

/// One link of a container: a veth pair to a network's bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// `/proc/PID/ns/net` of the network's holder.
    pub namespace: Vec<u8>,
    pub subnet: Subnet,
    pub address: [u8; 4],
    /// Route everything else through this bridge (`network = "outbound"`).
    pub default_route: bool,
    /// The bridge's end of the veth pair: a name never used before on
    /// that bridge (a reused network may still hold the ends of the last
    /// test's containers while their namespaces are torn down).
    pub veth: String,
    /// A namespace the holder prepared with this link in it
    /// (`/proc/HOLDER/fd/N`, see `slots`): the container enters it
    /// instead of making its own.
    pub prepared: Option<Vec<u8>>,
}

/// A test's network, as long as this lives: dropping it lets its holder
/// go, and the namespace goes with the holder and the last container.
pub struct Network {
    /// The holder's socket; closing it ends the holder.
    _holder: OwnedFd,
    pid: u32,
    rootless: bool,
    pub subnet: Subnet,
    /// Outbound: the host's address on the uplink.
    pub host_address: Option<[u8; 4]>,
    /// Links handed out, which names the next veth.
    links: AtomicU32,
    /// A test's plain network (no uplink, a user namespace of its own),
    /// which the next test may have once this one is done with it.
    pub(in crate::sandbox) reusable: bool,
    /// Namespaces its holder prepared ahead of need (reusable networks).
    slots: Slots,
    /// The links handed out for the running test, which the next one will
    /// likely want again, and the bridge's ends of them.
    used: Mutex<Vec<(Shape, String)>>,
}

impl Network {
    /// A link to this network at its `n`th address; `outbound`: with a
    /// route out by the uplink (when the network has one).
    pub fn link(&self, n: u32, outbound: bool) -> Link {
        let shape = Shape {
            address: self.subnet.address(n),
            default_route: outbound && self.host_address.is_some(),
        };
        let slot = self
            .reusable
            .then(|| self.slots.take(self._holder.as_fd(), shape));
        let (veth, prepared) = match slot.flatten() {
            Some(slot) => (
                slot.veth,
                Some(format!("/proc/{}/fd/{}", self.pid, slot.fd).into_bytes()),
            ),
            None => (
                format!("v{}", self.links.fetch_add(1, Ordering::Relaxed)),
                None,
            ),
        };
        if self.reusable {
            lock(&self.used).push((shape, veth.clone()));
        }
        Link {
            namespace: format!("/proc/{}/ns/net", self.pid).into_bytes(),
            subnet: self.subnet,
            address: shape.address,
            default_route: shape.default_route,
            veth,
            prepared,
        }
    }

    /// Once every container on it has ended: lets the holder take their
    /// links off the bridge and close the namespaces they used, and
    /// prepare, in the background, those the next test will likely want
    /// (the same links).
    pub(in crate::sandbox) fn renew_slots(&self) {
        let (shapes, veths): (Vec<Shape>, Vec<String>) =
            std::mem::take(&mut *lock(&self.used)).into_iter().unzip();
        self.slots.renew(self._holder.as_fd(), veths, &shapes);
    }

    /// Before it serves another test: waits until the last test's links
    /// are off the bridge (`slots`); false if its holder is gone.
    pub(in crate::sandbox) fn settle(&self) -> bool {
        self.slots.settle(self._holder.as_fd())
    }

    /// Whether its holder still runs: its end of the socket closes when it
    /// dies (and its pid may then name another process).
    pub(in crate::sandbox) fn is_alive(&self) -> bool {
        let mut socket = [PollFd::new(self._holder.as_fd(), PollFlags::empty())];
        poll(&mut socket, PollTimeout::ZERO).is_ok()
            && !socket[0].revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL)
            })
    }

    /// A container on `links` (this network's and others'), seeing
    /// `hosts` as its /etc/hosts.
    pub fn attachment(&self, links: Vec<Link>, hosts: &[u8]) -> NetworkAttachment {
        NetworkAttachment {
            links,
            beside: None,
            user_namespace: self.user_namespace(),
            hosts: hosts.to_vec(),
        }
    }

    /// Rootless: the user namespace that owns the network.
    pub fn user_namespace(&self) -> Option<Vec<u8>> {
        self.rootless
            .then(|| format!("/proc/{}/ns/user", self.pid).into_bytes())
    }

    /// How a container joins the network namespace of another one, whose
    /// init is `init_pid`, seeing `hosts` as its /etc/hosts.
    pub fn beside(&self, init_pid: u32, hosts: &[u8]) -> NetworkAttachment {
        NetworkAttachment {
            beside: Some(format!("/proc/{init_pid}/ns/net").into_bytes()),
            ..self.attachment(Vec::new(), hosts)
        }
    }
}

/// Starts a network's holder through the server and waits until its
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
            errno: None,
        })?;
    let ready = ready?;
    Ok(Network {
        _holder: socket,
        pid: ready.pid,
        rootless: request.user_namespace.is_some(),
        subnet: request.subnet,
        host_address: ready.host_address,
        links: AtomicU32::new(0),
        reusable: request.subnet == Subnet::PRIVATE
            && !request.outbound
            && request.join_user_namespace.is_none(),
        slots: Slots::default(),
        used: Mutex::default(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds a throwaway network (for `isotest doctor`) through a server of
/// its own: a bridge, and with `outbound` an uplink veth pair to the
/// host with NAT; everything is gone when this returns.
pub fn probe(outbound: bool, user_namespace: Option<IdMapping>) -> Result<(), SetupFailure> {
    let server = ForkServer::default();
    let request = NetworkRequest {
        user_namespace,
        outbound,
        subnet: Subnet::PRIVATE,
        join_user_namespace: None,
    };
    create(&server, &request).map(drop)
}

/// `10.89.0.3`.
fn show_address(address: [u8; 4]) -> String {
    let [a, b, c, d] = address;
    format!("{a}.{b}.{c}.{d}")
}

/// In a container's init, before it unshares its other namespaces: a new
/// network namespace with `lo` up and a link on each network's bridge
/// (`eth0`, `eth1`...), or the namespace it is to share.
pub(super) fn join(attachment: &NetworkAttachment) -> Result<(), SetupFailure> {
    if let Some(beside) = &attachment.beside {
        let path = String::from_utf8_lossy(beside).into_owned();
        let namespace = File::open(&path).step(|| format!("open {path}"))?;
        return setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET)
            .step(|| format!("join the network namespace {path}"));
    }
    let networks: Vec<(String, File)> = attachment
        .links
        .iter()
        .map(|link| {
            let path = String::from_utf8_lossy(&link.namespace).into_owned();
            let file = File::open(&path).step(|| format!("open the test's network {path}"))?;
            Ok((path, file))
        })
        .collect::<Result<_, SetupFailure>>()?;
    let prepared = attachment.links.first().and_then(|l| l.prepared.as_ref());
    match prepared {
        Some(slot) => {
            let path = String::from_utf8_lossy(slot).into_owned();
            let namespace = File::open(&path).step(|| format!("open the prepared {path}"))?;
            setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET)
                .step(|| format!("enter the prepared network namespace {path}"))?;
        }
        None => unshare(CloneFlags::CLONE_NEWNET).step(|| "unshare(CLONE_NEWNET)".into())?,
    }
    let own = File::open("/proc/self/ns/net").step(|| "open /proc/self/ns/net".into())?;
    let links = attachment.links.iter().zip(&networks).enumerate();
    for (index, (link, (path, network))) in links.skip(usize::from(prepared.is_some())) {
        let interface = format!("eth{index}");
        let veth = &link.veth;
        setns(network.as_fd(), CloneFlags::CLONE_NEWNET)
            .step(|| format!("enter the test's network {path}"))?;
        let plugged = plug_into_bridge(veth, &interface, &own);
        setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
            .step(|| "return to the container's network namespace".into())?;
        plugged?;
        configure_interface(&interface, link)?;
    }
    match prepared {
        Some(_) => Ok(()),
        None => super::net::bring_up_loopback(),
    }
}

/// In the network's namespace: a veth pair, `interface` in the container's
/// namespace, `veth` on the bridge.
pub(super) fn plug_into_bridge(
    veth: &str,
    interface: &str,
    container: &File,
) -> Result<(), SetupFailure> {
    let mut link = netlink::Netlink::open().step(|| "open a netlink socket".into())?;
    link.create_veth(veth, interface, container.as_fd())
        .step(|| format!("create veth pair {veth} / {interface}"))?;
    let bridge = if_nametoindex(BRIDGE).step(|| format!("find bridge {BRIDGE}"))?;
    link.set_up(veth, Some(bridge))
        .step(|| format!("put {veth} on bridge {BRIDGE}"))
}

pub(super) fn configure_interface(interface: &str, link: &Link) -> Result<(), SetupFailure> {
    let (shown, prefix) = (show_address(link.address), link.subnet.prefix);
    let mut netlink = netlink::Netlink::open().step(|| "open a netlink socket".into())?;
    let index = if_nametoindex(interface).step(|| format!("find {interface}"))?;
    netlink
        .add_address(index, link.address, prefix)
        .step(|| format!("give {interface} address {shown}/{prefix}"))?;
    netlink
        .set_up(interface, None)
        .step(|| format!("bring up {interface}"))?;
    if link.default_route {
        let gateway = link.subnet.gateway();
        netlink
            .add_default_route(gateway)
            .step(|| format!("add a default route via {}", show_address(gateway)))?;
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
    fn subnets_number_their_hosts() {
        assert_eq!(Subnet::PRIVATE.address(3), [10, 89, 0, 3]);
        assert_eq!(Subnet::PRIVATE.gateway(), [10, 89, 0, 1]);
        assert_eq!(Subnet::PRIVATE.hosts(), 253);
        let shared = Subnet::shared(2);
        assert_eq!(shared.address(258), [10, 92, 1, 2]);
        assert_eq!(shared.hosts(), 65533);
    }

    #[test]
    fn hosts_name_every_container() {
        let at = |n| Subnet::PRIVATE.address(n);
        let hosts = hosts_file(&[("test".into(), at(2)), ("db".into(), at(3))]);
        let text = String::from_utf8(hosts).unwrap();
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.89.0.2\ttest\n"));
        assert!(text.ends_with("10.89.0.3\tdb\n"));
    }
}
