//! The default seccomp filter of a test command: Docker's default profile
//! for a container without extra capabilities, written as a deny-list.
//! Every syscall is allowed except those that reach kernel state shared with
//! the host or other tests (keyrings, modules, the clock, mounts, namespaces)
//! or that are large kernel attack surface. Refused calls fail with EPERM,
//! as a missing capability would; `clone3` fails with ENOSYS so that libc
//! falls back to `clone`, whose flags a filter can see (clone3 keeps them in
//! memory, out of its reach).
//!
//! The deny-list names x86_64 syscall numbers, so the other ABIs a process
//! can enter (i386 through `int 0x80`, x32 through numbers with bit 30 set)
//! are refused whole. seccompiler compiles the deny-list; a short prologue
//! adds what it cannot express: a second errno, and a test on bits of the
//! syscall number. (seccompiler's own architecture check would kill the
//! process instead; the prologue answers first, with EPERM.)

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the default seccomp filter is written for x86_64 syscall numbers");

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::sync::OnceLock;

use libc::c_long;
use nix::errno::Errno;
use seccompiler::{
    sock_filter, BackendError, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use super::spec::SetupFailure;
use super::step::failure;

/// Which calls of a syscall are refused, judged on its first argument.
enum Refuse {
    Always,
    /// When the argument has any of these bits set.
    AnyBitOf(u64),
    /// When the argument is one of these values.
    OneOf(&'static [u64]),
    /// When the argument is none of these values.
    NoneOf(&'static [u64]),
}

use Refuse::{Always, AnyBitOf, NoneOf, OneOf};

/// The deny-list, one line per group, each saying why. Docker refuses the
/// same to a container with its default capabilities, with two deliberate
/// differences: `ptrace` and `process_vm_readv/writev` stay allowed (as
/// Docker does on kernels ≥ 4.8, where ptrace no longer bypasses seccomp),
/// so strace and gdb work in a test, and the PID namespace already hides
/// every process outside the container. Not listed: syscalls the kernel no
/// longer implements (nfsservctl, create_module, get_kernel_syms,
/// query_module, the reserved slots) fail with ENOSYS anyway, and vm86 and
/// vm86old exist only in the i386 ABI.
#[rustfmt::skip]
const DENIED: &[(&[c_long], Refuse)] = {
    use libc::*;
    &[
        // Keyrings are not namespaced: they hold the host's and other tests' keys.
        (&[SYS_keyctl, SYS_add_key, SYS_request_key], Always),
        // Loading code into the kernel, or replacing it.
        (&[SYS_init_module, SYS_finit_module, SYS_delete_module], Always),
        (&[SYS_kexec_load, SYS_kexec_file_load], Always),
        // eBPF, perf events and io_uring: kernel attack surface; perf watches
        // the whole host, and io_uring's operations bypass seccomp.
        (&[SYS_bpf, SYS_perf_event_open], Always),
        (&[SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register], Always),
        // Host-wide state: reboot, swap, process accounting, disk quotas, the
        // kernel log, hanging up the terminal.
        (&[SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct], Always),
        (&[SYS_quotactl, SYS_quotactl_fd, SYS_syslog, SYS_vhangup], Always),
        // The clock is not namespaced. adjtimex and clock_adjtime stay allowed,
        // as in Docker: reading through them is common (NTP status), and the
        // kernel refuses setting through them without CAP_SYS_TIME.
        (&[SYS_settimeofday, SYS_clock_settime], Always),
        // Mounts, old API and new: the test's mounts are made for it.
        (&[SYS_mount, SYS_umount2, SYS_pivot_root, SYS_mount_setattr], Always),
        (&[SYS_open_tree, SYS_OPEN_TREE_ATTR, SYS_move_mount], Always),
        (&[SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick], Always),
        // Namespaces: the test keeps the ones it was given. Its hostname is
        // its own (a UTS namespace per test), so sethostname stays allowed
        // for tests granted CAP_SYS_ADMIN, as in Docker.
        (&[SYS_unshare, SYS_setns], Always),
        (&[SYS_clone], AnyBitOf(NAMESPACE_FLAGS)),
        // Opening by file handle skips path lookup: the "shocker" escape.
        // name_to_handle_at only makes handles, and Docker allows it too.
        (&[SYS_open_by_handle_at], Always),
        // Lets a process stall the kernel at a page fault: an exploit staple.
        (&[SYS_userfaultfd], Always),
        // Reaching into other processes beyond what ptrace allows; Docker
        // grants these only with CAP_SYS_PTRACE.
        (&[SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise], Always),
        // The host's I/O ports.
        (&[SYS_iopl, SYS_ioperm], Always),
        // NUMA policy and page migration; Docker grants them with CAP_SYS_NICE.
        (&[SYS_mbind, SYS_get_mempolicy, SYS_set_mempolicy], Always),
        (&[SYS_set_mempolicy_home_node, SYS_migrate_pages, SYS_move_pages], Always),
        // Obsolete interfaces, kept only for old binaries.
        (&[SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_lookup_dcookie], Always),
        // Execution domains other than Linux's: ADDR_NO_RANDOMIZE turns off
        // ASLR. Docker's allowed set: PER_LINUX, PER_LINUX32, UNAME26, both,
        // and 0xffffffff, which only queries.
        (&[SYS_personality], NoneOf(&[0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff])),
        // Kernel crypto sockets (attack surface), and vsock (talks to the host
        // of a virtual machine).
        (&[SYS_socket], OneOf(&[AF_ALG as u64, AF_VSOCK as u64])),
    ]
};

/// Not in libc yet (Linux 6.15).
const SYS_OPEN_TREE_ATTR: c_long = 467;

/// Clone flags that create namespaces (Docker's mask, 0x7e020000).
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

impl Refuse {
    /// seccompiler's rules for these calls: any rule matching refuses the
    /// call; no rules refuse every call.
    fn rules(&self) -> Result<Vec<SeccompRule>, BackendError> {
        // Dword: personality and socket take 32-bit arguments, and the clone
        // flags refused are in the low half.
        let first = |op, value| SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, value);
        match self {
            Always => Ok(Vec::new()),
            AnyBitOf(mask) => (0..64)
                .map(|bit| 1u64 << bit)
                .filter(|flag| mask & flag != 0)
                .map(|flag| SeccompRule::new(vec![first(SeccompCmpOp::MaskedEq(flag), flag)?]))
                .collect(),
            OneOf(values) => values
                .iter()
                .map(|&value| SeccompRule::new(vec![first(SeccompCmpOp::Eq, value)?]))
                .collect(),
            NoneOf(values) => {
                let conditions = values
                    .iter()
                    .map(|&value| first(SeccompCmpOp::Ne, value))
                    .collect::<Result<_, _>>()?;
                Ok(vec![SeccompRule::new(conditions)?])
            }
        }
    }
}

const LOAD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JUMP_IF_ANY_BIT: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RETURN: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const fn instruction(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Runs before the deny-list: ENOSYS for clone3, EPERM for other ABIs. A
/// jump skips `jt` or `jf` instructions.
fn prologue() -> [sock_filter; 8] {
    let arch = offset_of!(libc::seccomp_data, arch) as u32;
    let nr = offset_of!(libc::seccomp_data, nr) as u32;
    let fail_with = |errno: i32| libc::SECCOMP_RET_ERRNO | errno as u32;
    [
        instruction(LOAD, 0, 0, arch),
        // i386: EPERM.
        instruction(JUMP_IF_EQUAL, 0, 5, AUDIT_ARCH_X86_64),
        instruction(LOAD, 0, 0, nr),
        // clone3: ENOSYS.
        instruction(JUMP_IF_EQUAL, 2, 0, libc::SYS_clone3 as u32),
        // -1 (a tracer skipping the call) goes on to the deny-list: an errno
        // here would overwrite the result the tracer chose.
        instruction(JUMP_IF_EQUAL, 3, 0, u32::MAX),
        // x32: EPERM; the rest goes on to the deny-list.
        instruction(JUMP_IF_ANY_BIT, 1, 2, X32_SYSCALL_BIT),
        instruction(RETURN, 0, 0, fail_with(libc::ENOSYS)),
        instruction(RETURN, 0, 0, fail_with(libc::EPERM)),
    ]
}

/// The default filter as a BPF program: the prologue, then the deny-list.
pub fn build_default_filter() -> Result<BpfProgram, String> {
    let mut rules = BTreeMap::new();
    for (syscalls, refuse) in DENIED {
        let refused = refuse.rules().map_err(|e| e.to_string())?;
        for &syscall in *syscalls {
            rules.insert(syscall, refused.clone());
        }
    }
    let deny_list = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .and_then(BpfProgram::try_from)
    .map_err(|e| e.to_string())?;
    Ok(prologue().into_iter().chain(deny_list).collect())
}

/// The default filter, compiled once per process: the fork server calls
/// this at start, so every supervisor, init and test command it forks
/// finds the program already built.
pub fn prepare_default_filter() -> &'static Result<BpfProgram, String> {
    static DEFAULT: OnceLock<Result<BpfProgram, String>> = OnceLock::new();
    DEFAULT.get_or_init(build_default_filter)
}

/// Installs the default filter on the calling process, to be inherited by
/// the test command it is about to exec: call it last before exec, after
/// the setup it would refuse (mounts, namespaces, hostname) and after
/// no_new_privs is set, without which the kernel refuses the filter (EACCES)
/// to a process lacking CAP_SYS_ADMIN.
pub fn install_default_filter() -> Result<(), SetupFailure> {
    let step = "install the default seccomp filter";
    let program = prepare_default_filter()
        .as_ref()
        .map_err(|cause| SetupFailure {
            step: step.into(),
            cause: cause.clone(),
            hint: None,
            host_unsupported: false,
        })?;
    apply(program).map_err(|errno| {
        let mut failure = failure(step.into(), errno);
        if errno == Errno::EINVAL {
            failure.hint = Some(
                "the kernel lacks seccomp filters (CONFIG_SECCOMP_FILTER); \
                 set `seccomp = false` for this test"
                    .into(),
            );
        }
        failure
    })
}

/// Installs `program` on the calling thread. Async-signal-safe.
fn apply(program: &[sock_filter]) -> nix::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is a #[repr(C)] copy of the kernel's.
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `fprog` points to `len` valid instructions, which the kernel
    // copies before returning.
    let result =
        unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) };
    Errno::result(result).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    #[test]
    fn compiles_within_the_kernel_limit() {
        let program = build_default_filter().unwrap();
        assert!(program.len() <= libc::BPF_MAXINSNS as usize);
    }

    /// A second entry for a syscall would silently replace the first.
    #[test]
    fn lists_each_syscall_once() {
        let mut listed: Vec<c_long> = DENIED.iter().flat_map(|(s, _)| s.iter().copied()).collect();
        let count = listed.len();
        listed.sort_unstable();
        listed.dedup();
        assert_eq!(listed.len(), count);
    }

    #[test]
    fn namespace_flags_are_dockers() {
        assert_eq!(NAMESPACE_FLAGS, 0x7e02_0000);
    }

    /// Exit code of a child that could not install the filter.
    const NOT_INSTALLED: i32 = 255;

    /// Runs `check` in a forked child under the default filter.
    fn run_filtered(check: fn() -> i32) -> WaitStatus {
        // Built before fork: the child of a multi-threaded process must not
        // allocate.
        let program = build_default_filter().unwrap();
        // SAFETY: the child makes only async-signal-safe calls, then _exit.
        match unsafe { libc::fork() } {
            0 => {
                let installed = nix::sys::prctl::set_no_new_privs().and_then(|()| apply(&program));
                let code = if installed.is_ok() {
                    check()
                } else {
                    NOT_INSTALLED
                };
                unsafe { libc::_exit(code) }
            }
            -1 => panic!("fork: {}", Errno::last()),
            child => waitpid(Pid::from_raw(child), None).unwrap(),
        }
    }

    /// Raw syscalls and the errno each must fail with under the filter
    /// (None: it succeeds). Arguments are chosen so that the kernel, unfiltered,
    /// answers differently; none spawns a process or writes memory.
    #[rustfmt::skip]
    const EXPECTED: &[(&str, c_long, [c_long; 3], Option<Errno>)] = {
        use libc::*;
        const EPERM: Option<Errno> = Some(Errno::EPERM);
        const KEYRING: c_long = KEY_SPEC_SESSION_KEYRING as _;
        &[
            ("keyctl", SYS_keyctl, [KEYCTL_GET_KEYRING_ID as _, KEYRING, 0], EPERM),
            ("bpf", SYS_bpf, [0, 0, 0], EPERM),
            ("unshare", SYS_unshare, [CLONE_NEWUSER as _, 0, 0], EPERM),
            ("mount", SYS_mount, [0, 0, 0], EPERM),
            // No such clock: EINVAL, if the kernel saw it.
            ("clock_settime", SYS_clock_settime, [100, 0, 0], EPERM),
            ("no ASLR", SYS_personality, [ADDR_NO_RANDOMIZE as _, 0, 0], EPERM),
            ("personality query", SYS_personality, [0xffff_ffff, 0, 0], None),
            // CLONE_NEWNS with CLONE_FS: EINVAL, if the kernel saw it.
            ("clone(CLONE_NEWNS)", SYS_clone, [(CLONE_NEWNS | CLONE_FS) as _, 0, 0], EPERM),
            // CLONE_SIGHAND without CLONE_VM: EINVAL from the kernel.
            ("plain clone", SYS_clone, [CLONE_SIGHAND as _, 0, 0], Some(Errno::EINVAL)),
            ("clone3", SYS_clone3, [0, 0, 0], Some(Errno::ENOSYS)),
            ("socket(AF_ALG)", SYS_socket, [AF_ALG as _, SOCK_SEQPACKET as _, 0], EPERM),
            ("socket(AF_UNIX)", SYS_socket, [AF_UNIX as _, SOCK_STREAM as _, 0], None),
            ("x32 getpid", X32_SYSCALL_BIT as c_long | SYS_getpid, [0, 0, 0], EPERM),
            ("getpid", SYS_getpid, [0, 0, 0], None),
            ("read", SYS_read, [-1, 0, 0], Some(Errno::EBADF)),
            ("write", SYS_write, [-1, 0, 0], Some(Errno::EBADF)),
            // Pid 1 is not our tracee.
            ("ptrace", SYS_ptrace, [PTRACE_PEEKDATA as _, 1, 0], Some(Errno::ESRCH)),
        ]
    };

    /// 0, or 1 + the index of the first call in EXPECTED that answered otherwise.
    fn first_unexpected() -> i32 {
        for (index, (_, syscall, [a, b, c], expected)) in EXPECTED.iter().enumerate() {
            // SAFETY: see EXPECTED.
            let result = unsafe { libc::syscall(*syscall, *a, *b, *c) };
            if (result == -1).then(Errno::last) != *expected {
                return index as i32 + 1;
            }
        }
        0
    }

    #[test]
    fn refuses_the_deny_list_in_a_real_process() {
        match run_filtered(first_unexpected) {
            WaitStatus::Exited(_, 0) => {}
            WaitStatus::Exited(_, NOT_INSTALLED) => panic!("could not install the filter"),
            WaitStatus::Exited(_, n) => {
                let (name, _, _, expected) = EXPECTED[n as usize - 1];
                panic!("{name}: expected {expected:?}, got another result")
            }
            other => panic!("child: {other:?}"),
        }
    }

    #[test]
    fn refuses_i386_syscalls() {
        fn i386_getpid() -> i32 {
            let result: i32;
            // SAFETY: getpid (20 in the i386 ABI) takes no arguments; the
            // kernel may clear r8-r11 on return from int 0x80.
            unsafe {
                std::arch::asm!("int 0x80", inlateout("eax") 20 => result,
                    out("r8") _, out("r9") _, out("r10") _, out("r11") _, options(nostack));
            }
            i32::from(result != -libc::EPERM)
        }
        match run_filtered(i386_getpid) {
            WaitStatus::Exited(_, 0) => {}
            // A kernel without IA32 emulation has no i386 ABI to refuse.
            WaitStatus::Signaled(_, Signal::SIGSEGV, _) => eprintln!("no IA32 emulation here"),
            other => panic!("child: {other:?}"),
        }
    }
}
