//! Container namespaces prepared ahead of need: once a test is done with a
//! reusable network, the runner asks its holder to prepare, in the
//! background, what the next test's containers will need — for each, a
//! fresh network namespace with `lo` up and `eth0` on the bridge, addressed
//! and up. A container then only enters it (`/proc/HOLDER/fd/N`) instead of
//! making its veth pair while it starts: creating links waits on the
//! kernel's rtnl lock, which the teardown of the last test's namespaces
//! holds for milliseconds at a time.
//!
//! A slot is used by one container only, and never again: the holder
//! closes it when the runner releases it (the test ended), and every slot
//! goes with the holder, so nothing outlives the network.
//!
//! No two links on the bridge may share an address, or the kernel's ARP
//! answers for the wrong one (a connection to a ready service is then
//! refused by a namespace where nothing listens). Two things would make
//! such pairs, and both are ruled out here:
//! - a finished test's namespaces are destroyed asynchronously by the
//!   kernel, their veths still on the bridge meanwhile: at `renew` the
//!   holder takes the bridge's end of every link the test had down before
//!   it answers, and the network serves the next test only after that
//!   answer (`settle`);
//! - a container that makes its own link while a slot with its address is
//!   still being prepared: `take` waits for that slot instead.
//!
//! - holder side: `serve` answers `Prepare` and `Retire` on its socket;
//! - runner side: `Slots` sends requests, collects answers without waiting,
//!   and hands out a matching slot if one is ready.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Mutex;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::socket::{recv, send, MsgFlags};
use serde::{Deserialize, Serialize};

use super::{configure_interface, plug_into_bridge, Link, Subnet};
use crate::sandbox::spec::SetupFailure;
use crate::sandbox::step::Step;

/// What a container's link looks like, as far as a slot is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub address: [u8; 4],
    pub default_route: bool,
}

/// The runner's requests to a holder.
#[derive(Debug, Serialize, Deserialize)]
enum Command {
    Prepare(Shape),
    /// The test is over: take these bridge ends of its links down and
    /// close these slots, then answer `Retired`.
    Retire {
        veths: Vec<String>,
        slots: Vec<i32>,
    },
}

/// The holder's answers, one per command, in the order asked.
#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Prepared(Result<Slot, SetupFailure>),
    Retired,
}

/// A prepared namespace: the holder's fd for it, and the bridge's end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub shape: Shape,
    pub fd: i32,
    pub veth: String,
}

/// Holder side: answers the runner until it lets go (EOF or error).
/// `bridge` is the network's namespace, which this thread is in.
pub fn serve(socket: BorrowedFd<'_>, bridge: &File, subnet: Subnet) {
    let mut slots: HashMap<i32, File> = HashMap::new();
    let mut made = 0u32;
    let mut buffer = [0u8; 64 * 1024];
    while let Ok(len @ 1..) = recv(socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
        let answer = match serde_json::from_slice(&buffer[..len]) {
            Ok(Command::Prepare(shape)) => {
                made += 1;
                let veth = format!("p{made}");
                Answer::Prepared(
                    prepare_in_thread(bridge, subnet, shape, &veth).map(|namespace| {
                        let fd = namespace.as_raw_fd();
                        slots.insert(fd, namespace);
                        Slot { shape, fd, veth }
                    }),
                )
            }
            Ok(Command::Retire { veths, slots: used }) => {
                unplug(&veths);
                for fd in used {
                    drop(slots.remove(&fd));
                }
                Answer::Retired
            }
            Err(_) => return,
        };
        let json = serde_json::to_vec(&answer).expect("answers serialize");
        if send(socket.as_raw_fd(), &json, MsgFlags::empty()).is_err() {
            return;
        }
    }
}

/// Takes the bridge's ends of `veths` down: the bridge forwards nothing to
/// a port that is down, so a namespace the kernel has yet to destroy no
/// longer answers for its address. Deleting them instead would wait for
/// the kernel's RCU barrier (~35 ms each); they go with their namespaces.
/// One already gone is fine, and nothing else can be done about one that
/// cannot be taken down.
fn unplug(veths: &[String]) {
    let Ok(mut netlink) = super::netlink::Netlink::open() else {
        return;
    };
    for veth in veths {
        let _ = netlink.set_down(veth);
    }
}

/// Prepares a slot in a thread of its own: namespaces are per thread, and
/// the holder's main one must stay in the bridge's (`/proc/PID/ns/net`).
fn prepare_in_thread(
    bridge: &File,
    subnet: Subnet,
    shape: Shape,
    veth: &str,
) -> Result<File, SetupFailure> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| prepare(bridge, subnet, shape, veth))
            .join()
            .unwrap_or_else(|_| {
                Err(SetupFailure {
                    step: "prepare a container's network namespace".into(),
                    cause: "its thread panicked".into(),
                    hint: None,
                    host_unsupported: false,
                    errno: None,
                })
            })
    })
}

/// In a thread that may leave its namespace: a new one with `lo` up and
/// `eth0` plugged into the bridge, configured as `shape` says.
fn prepare(bridge: &File, subnet: Subnet, shape: Shape, veth: &str) -> Result<File, SetupFailure> {
    unshare(CloneFlags::CLONE_NEWNET).step(|| "unshare(CLONE_NEWNET) for a slot".into())?;
    crate::sandbox::net::bring_up_loopback()?;
    let own =
        File::open("/proc/thread-self/ns/net").step(|| "open /proc/thread-self/ns/net".into())?;
    setns(bridge.as_fd(), CloneFlags::CLONE_NEWNET).step(|| "enter the test's network".into())?;
    plug_into_bridge(veth, "eth0", &own)?;
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
        .step(|| "enter the slot's network namespace".into())?;
    let link = Link {
        namespace: Vec::new(),
        subnet,
        address: shape.address,
        default_route: shape.default_route,
        veth: veth.to_string(),
        prepared: None,
    };
    configure_interface("eth0", &link)?;
    Ok(own)
}

/// Runner side: the slots of one network.
#[derive(Default)]
pub struct Slots {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Prepared and not handed out.
    ready: Vec<Slot>,
    /// Asked for, not answered yet.
    asked: Vec<Shape>,
    /// Handed out to a container of the running test.
    taken: Vec<Slot>,
    /// Retire commands not answered yet.
    retiring: usize,
}

impl Slots {
    /// A ready slot of `shape`; if one is being prepared, waits for it (a
    /// container making its own link would share its address). None when
    /// none was asked for, or it could not be made.
    pub fn take(&self, socket: BorrowedFd<'_>, shape: Shape) -> Option<Slot> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        collect_answers(socket, &mut state, Wait::No);
        while !state.ready.iter().any(|slot| slot.shape == shape) && state.asked.contains(&shape) {
            if !collect_answers(socket, &mut state, Wait::ForOne) {
                break;
            }
        }
        let index = state.ready.iter().position(|slot| slot.shape == shape)?;
        let slot = state.ready.swap_remove(index);
        state.taken.push(slot.clone());
        Some(slot)
    }

    /// Once every container on the network has ended: has the holder
    /// take the bridge's ends of `veths` (every link the test had) down and
    /// close the slots they used, and asks for slots shaped as `used` (the
    /// links the test had), but for those already ready or asked for.
    pub fn renew(&self, socket: BorrowedFd<'_>, veths: Vec<String>, used: &[Shape]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let slots = std::mem::take(&mut state.taken)
            .iter()
            .map(|s| s.fd)
            .collect();
        if ask(socket, &Command::Retire { veths, slots }) {
            state.retiring += 1;
        }
        collect_answers(socket, &mut state, Wait::No);
        let mut have: Vec<Shape> = state.ready.iter().map(|s| s.shape).collect();
        have.extend(&state.asked);
        for shape in missing(used, have) {
            if ask(socket, &Command::Prepare(shape)) {
                state.asked.push(shape);
            }
        }
    }

    /// Waits until the last test's links are off the bridge; false if the
    /// holder is gone.
    pub fn settle(&self, socket: BorrowedFd<'_>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.retiring > 0 {
            if !collect_answers(socket, &mut state, Wait::ForOne) {
                return false;
            }
        }
        true
    }
}

/// The shapes of `wanted` that `have` does not cover, one for one.
fn missing(wanted: &[Shape], mut have: Vec<Shape>) -> Vec<Shape> {
    let mut missing = Vec::new();
    for shape in wanted {
        match have.iter().position(|h| h == shape) {
            Some(index) => drop(have.swap_remove(index)),
            None => missing.push(*shape),
        }
    }
    missing
}

fn ask(socket: BorrowedFd<'_>, command: &Command) -> bool {
    let json = serde_json::to_vec(command).expect("commands serialize");
    send(socket.as_raw_fd(), &json, MsgFlags::MSG_DONTWAIT).is_ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    No,
    ForOne,
}

/// Takes in the holder's answers that have arrived (`Wait::ForOne`: waits
/// for one first); false if the holder is gone. A slot that could not be
/// made is forgotten: its container makes its own link as it starts, as
/// without slots.
fn collect_answers(socket: BorrowedFd<'_>, state: &mut State, wait: Wait) -> bool {
    let mut buffer = [0u8; 4096];
    let mut flags = match wait {
        Wait::No => MsgFlags::MSG_DONTWAIT,
        Wait::ForOne => MsgFlags::empty(),
    };
    loop {
        let len = match recv(socket.as_raw_fd(), &mut buffer, flags) {
            Ok(0) => return false,
            Ok(len) => len,
            Err(nix::errno::Errno::EAGAIN) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        };
        flags = MsgFlags::MSG_DONTWAIT;
        match serde_json::from_slice::<Answer>(&buffer[..len]) {
            // Answers come in the order asked.
            Ok(Answer::Prepared(answer)) => {
                if !state.asked.is_empty() {
                    state.asked.remove(0);
                }
                if let Ok(slot) = answer {
                    state.ready.push(slot);
                }
            }
            Ok(Answer::Retired) => state.retiring = state.retiring.saturating_sub(1),
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_missing_shapes_are_asked_for() {
        let test = Shape {
            address: [10, 89, 0, 2],
            default_route: false,
        };
        let service = Shape {
            address: [10, 89, 0, 3],
            ..test
        };
        assert_eq!(missing(&[test, service], vec![]), vec![test, service]);
        assert_eq!(missing(&[test, service], vec![service]), vec![test]);
        assert_eq!(missing(&[test, test], vec![test]), vec![test]);
        assert!(missing(&[test], vec![test, service]).is_empty());
    }
}
