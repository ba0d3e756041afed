//! The holder of one test's network: a process forked by the server
//! that makes a network namespace with a bridge (and, for outbound access,
//! an uplink with NAT), tells the runner its pid, and then only waits. The
//! runner closing its socket ends it; so does the server's death
//! (PDEATHSIG). Its namespace, bridge and veths vanish with it and the
//! containers plugged in, so a killed run leaves no network behind.
//!
//! Outbound (root only): a veth pair `isotest-PID` (host side) / `uplink`,
//! a /30 of 100.64.0.0/10 chosen by the pid, a default route to the host
//! side, forwarding on and a masquerade rule, all inside the holder's
//! namespace. The host only sees the `isotest-PID` link and its address,
//! which go with the namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

use nix::net::if_::if_nametoindex;
use nix::sched::{setns, unshare, CloneFlags};
use serde::{Deserialize, Serialize};

use super::netlink::Netlink;
use super::{show_address, Subnet, BRIDGE};
use crate::sandbox::spec::SetupFailure;
use crate::sandbox::step::Step;
use crate::sandbox::userns::{find_program, IdMapping};

/// What the runner asks of a network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// Rootless: the user namespace that owns the network (and that its
    /// containers join).
    pub user_namespace: Option<IdMapping>,
    /// An uplink to the host with NAT.
    pub outbound: bool,
    pub subnet: Subnet,
    /// Rootless: join this user namespace (another network's, so that a
    /// container may plug into both) instead of making one.
    pub join_user_namespace: Option<Vec<u8>>,
}

/// The holder's answer: its pid, whose /proc/PID/ns/net is the network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkReady {
    pub pid: u32,
    /// Outbound: the host's address on the uplink, which containers know
    /// as `host.isotest`.
    pub host_address: Option<[u8; 4]>,
}

/// The uplink's name inside the network's namespace.
const UPLINK: &str = "uplink";

/// Body of the holder: the request on stdin, the runner's socket on fd 3.
/// Returns the exit code.
pub fn run_holder() -> i32 {
    // SAFETY: fd 3 is the socket the server put there for us.
    let socket = unsafe { OwnedFd::from_raw_fd(crate::sandbox::supervisor::REPORT_FD) };
    let built = read_request().and_then(|r| Ok((build(&r)?, r.subnet)));
    let answer = built.as_ref().map(|(ready, _)| ready);
    let json = serde_json::to_vec(&answer).expect("answers serialize");
    let mut socket = File::from(socket);
    if socket.write_all(&json).is_err() {
        return 1;
    }
    let Ok((_, subnet)) = &built else {
        return 1;
    };
    let Ok(bridge) = File::open("/proc/self/ns/net") else {
        return 1;
    };
    // Prepare namespaces when asked until the runner lets go (EOF), then
    // exit, taking the network.
    super::slots::serve(socket.as_fd(), &bridge, *subnet);
    0
}

fn read_request() -> Result<NetworkRequest, SetupFailure> {
    let mut json = Vec::new();
    std::io::stdin()
        .read_to_end(&mut json)
        .step(|| "read the network request".into())?;
    serde_json::from_slice(&json).map_err(|e| SetupFailure {
        step: "parse the network request".into(),
        cause: e.to_string(),
        hint: Some("the runner and network holder binaries differ; reinstall isotest".into()),
        host_unsupported: false,
        errno: None,
    })
}

fn build(request: &NetworkRequest) -> Result<NetworkReady, SetupFailure> {
    if let Some(mapping) = &request.user_namespace {
        if request.outbound {
            return Err(SetupFailure {
                step: "give the test's network an uplink (network = \"outbound\")".into(),
                cause: "rootless: a user namespace cannot add links to the host's network".into(),
                hint: Some("run as root, or use network = \"host\"".into()),
                host_unsupported: false,
                errno: None,
            });
        }
        match &request.join_user_namespace {
            Some(path) => super::join_user_namespace(path)?,
            None => {
                crate::sandbox::userns::enter(mapping).map_err(crate::sandbox::userns::explain)?
            }
        }
    }
    let host = File::open("/proc/self/ns/net").step(|| "open /proc/self/ns/net".into())?;
    unshare(CloneFlags::CLONE_NEWNET).step(|| "unshare(CLONE_NEWNET)".into())?;
    crate::sandbox::net::bring_up_loopback()?;
    let mut link = Netlink::open().step(|| "open a netlink socket".into())?;
    link.create_bridge(BRIDGE)
        .step(|| format!("create bridge {BRIDGE}"))?;
    let index = if_nametoindex(BRIDGE).step(|| format!("find bridge {BRIDGE}"))?;
    let (gateway, prefix) = (request.subnet.gateway(), request.subnet.prefix);
    link.add_address(index, gateway, prefix)
        .step(|| format!("give {BRIDGE} address {}", show_address(gateway)))?;
    link.set_up(BRIDGE, None)
        .step(|| format!("bring up {BRIDGE}"))?;
    let pid = std::process::id();
    let host_address = if request.outbound {
        add_uplink(&host, &mut link)?;
        Some(uplink_addresses(pid).0)
    } else {
        None
    };
    Ok(NetworkReady { pid, host_address })
}

/// The uplink's /30 for this holder: host side `.1`, ours `.2`.
fn uplink_addresses(pid: u32) -> ([u8; 4], [u8; 4]) {
    let base = (100u32 << 24) | (64 << 16) | ((pid % (1 << 20)) << 2);
    ((base | 1).to_be_bytes(), (base | 2).to_be_bytes())
}

fn add_uplink(host: &File, link: &mut Netlink) -> Result<(), SetupFailure> {
    let own = File::open("/proc/self/ns/net").step(|| "open /proc/self/ns/net".into())?;
    let host_name = format!("isotest-{}", std::process::id());
    let (host_side, our_side) = uplink_addresses(std::process::id());
    setns(host.as_fd(), CloneFlags::CLONE_NEWNET)
        .step(|| "enter the host's network namespace".into())?;
    let host_link = configure_host_side(&host_name, host_side, &own);
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .step(|| "return to the test network's namespace".into())?;
    host_link?;
    let index = if_nametoindex(UPLINK).step(|| format!("find {UPLINK}"))?;
    link.add_address(index, our_side, 30)
        .step(|| format!("give {UPLINK} address {}", show_address(our_side)))?;
    link.set_up(UPLINK, None)
        .step(|| format!("bring up {UPLINK}"))?;
    link.add_default_route(host_side)
        .step(|| format!("route via {}", show_address(host_side)))?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .step(|| "turn on forwarding in the test's network".into())?;
    masquerade()
}

/// In the host's namespace: the veth pair (our end into the network's
/// namespace) and the host side's address.
fn configure_host_side(name: &str, address: [u8; 4], network: &File) -> Result<(), SetupFailure> {
    let mut host = Netlink::open().step(|| "open a netlink socket on the host".into())?;
    host.create_veth(name, UPLINK, network.as_fd())
        .step(|| format!("create veth pair {name} / {UPLINK}"))?;
    let index = if_nametoindex(name).step(|| format!("find {name}"))?;
    host.add_address(index, address, 30)
        .step(|| format!("give {name} address {}", show_address(address)))?;
    host.set_up(name, None).step(|| format!("bring up {name}"))
}

/// Source NAT of everything leaving by the uplink, with nftables (or
/// iptables where nft is missing), in the network's namespace.
fn masquerade() -> Result<(), SetupFailure> {
    let rules = format!(
        "table ip isotest {{\n chain out {{\n  type nat hook postrouting priority 100; policy accept;\n  \
         oifname \"{UPLINK}\" masquerade\n }}\n}}\n"
    );
    let program = |name: &str| find_program(name).unwrap_or_else(|| name.into());
    let nft = Command::new(program("nft"))
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(rules.as_bytes())?;
            }
            child.wait()
        });
    if nft.as_ref().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let iptables = Command::new(program("iptables"))
        .args([
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            UPLINK,
            "-j",
            "MASQUERADE",
        ])
        .stdout(Stdio::null())
        .status();
    match iptables {
        Ok(status) if status.success() => Ok(()),
        _ => Err(SetupFailure {
            step: "masquerade the test network's traffic (network = \"outbound\")".into(),
            cause: "neither `nft` nor `iptables` could add the rule".into(),
            hint: Some("install nftables (apt-get install nftables); see `isotest doctor`".into()),
            host_unsupported: false,
            errno: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplinks_get_a_slash_30_by_pid() {
        assert_eq!(uplink_addresses(1), ([100, 64, 0, 5], [100, 64, 0, 6]));
        let (host, ours) = uplink_addresses((1 << 20) - 1);
        assert_eq!(host, [100, 127, 255, 253]);
        assert_eq!(ours, [100, 127, 255, 254]);
        // Wraps within 100.64.0.0/10.
        assert_eq!(uplink_addresses(1 << 20).0, [100, 64, 0, 1]);
    }
}
