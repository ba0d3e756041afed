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
//! are refused whole.
//!
//! The program is compiled here rather than by seccompiler, for speed: the
//! kernel checks every syscall number against a new filter when it is
//! installed (to cache the always-allowed ones), once per test, and
//! seccompiler's linear chain of ~350 instructions made that check and the
//! JIT cost ~0.15 ms per test. Here a binary search over the sorted
//! numbers leads to a shared answer in ~8 comparisons.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("the default seccomp filter is written for x86_64 syscall numbers");

use std::mem::offset_of;
use std::sync::OnceLock;

use libc::{c_long, sock_filter};
use nix::errno::Errno;

use super::spec::SetupFailure;
use super::step::failure;

/// A compiled filter.
pub type BpfProgram = Vec<sock_filter>;

/// Which calls of a syscall are refused, judged on the low 32 bits of its
/// first argument (personality and socket take 32-bit arguments, and the
/// clone flags refused are in the low half).
#[derive(Clone, Copy)]
enum Refuse {
    Always,
    /// When the argument has any of these bits set.
    AnyBitOf(u32),
    /// When the argument is one of these values.
    OneOf(&'static [u32]),
    /// When the argument is none of these values.
    NoneOf(&'static [u32]),
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
        (&[SYS_socket], OneOf(&[AF_ALG as u32, AF_VSOCK as u32])),
    ]
};

/// Not in libc yet (Linux 6.15).
const SYS_OPEN_TREE_ATTR: c_long = 467;

/// Clone flags that create namespaces (Docker's mask, 0x7e020000).
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

const LOAD: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JUMP_IF_EQUAL: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JUMP_IF_ANY_BIT: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JUMP_IF_AT_LEAST: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JUMP: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
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
    let mut denied: Vec<(u32, Refuse)> = DENIED
        .iter()
        .flat_map(|(syscalls, refuse)| syscalls.iter().map(|&nr| (nr as u32, *refuse)))
        .collect();
    denied.sort_by_key(|(nr, _)| *nr);
    let mut program = Assembler::new(denied.len());
    program.push(LOAD, Next, Next, offset_of!(libc::seccomp_data, nr) as u32);
    program.search(&denied, 0, denied.len());
    program.answers(&denied);
    let deny_list = program.finish()?;
    Ok(prologue().into_iter().chain(deny_list).collect())
}

/// Where a jump goes: the next instruction, or a label placed later (BPF
/// jumps only forward).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Next,
    Label(usize),
}

use Target::{Label, Next};

/// Labels of the shared answers; a refused syscall's own answer is labelled
/// by its index in the sorted list, after these; the search's labels follow.
const ALLOW: usize = 0;
const DENY: usize = 1;
const SYSCALL_LABELS: usize = 2;

/// Builds a program with labelled forward jumps. A JUMP (BPF_JA) goes to
/// its `jt` target.
struct Assembler {
    code: Vec<(u16, Target, Target, u32)>,
    /// Instruction index of each placed label.
    placed: Vec<(usize, usize)>,
    next_label: usize,
}

impl Assembler {
    fn new(syscalls: usize) -> Self {
        Assembler {
            code: Vec::new(),
            placed: Vec::new(),
            next_label: SYSCALL_LABELS + syscalls,
        }
    }

    fn push(&mut self, code: u16, jt: Target, jf: Target, k: u32) {
        self.code.push((code, jt, jf, k));
    }

    fn place(&mut self, label: usize) {
        self.placed.push((label, self.code.len()));
    }

    /// A binary search over `denied[start..end]` (sorted; A holds the
    /// syscall number): each number found jumps to its answer, the rest to
    /// ALLOW.
    fn search(&mut self, denied: &[(u32, Refuse)], start: usize, end: usize) {
        if end - start <= 3 {
            for (index, (nr, refuse)) in denied.iter().enumerate().take(end).skip(start) {
                let answer = match refuse {
                    Always => DENY,
                    _ => SYSCALL_LABELS + index,
                };
                self.push(JUMP_IF_EQUAL, Label(answer), Next, *nr);
            }
            self.push(JUMP, Label(ALLOW), Next, 0);
            return;
        }
        let middle = (start + end) / 2;
        let upper_half = self.next_label;
        self.next_label += 1;
        self.push(JUMP_IF_AT_LEAST, Label(upper_half), Next, denied[middle].0);
        self.search(denied, start, middle);
        self.place(upper_half);
        self.search(denied, middle, end);
    }

    /// The answers: the argument test of each syscall refused on its
    /// argument (at its label), then the shared ALLOW and DENY.
    fn answers(&mut self, denied: &[(u32, Refuse)]) {
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let first_argument = offset_of!(libc::seccomp_data, args) as u32;
        for (index, (_, refuse)) in denied.iter().enumerate() {
            let (values, on_match, otherwise): (&[u32], _, _) = match refuse {
                // Answered in the search.
                Always => continue,
                AnyBitOf(mask) => {
                    self.place(SYSCALL_LABELS + index);
                    self.push(LOAD, Next, Next, first_argument);
                    self.push(JUMP_IF_ANY_BIT, Label(DENY), Label(ALLOW), *mask);
                    continue;
                }
                OneOf(values) => (values, DENY, ALLOW),
                NoneOf(values) => (values, ALLOW, DENY),
            };
            self.place(SYSCALL_LABELS + index);
            self.push(LOAD, Next, Next, first_argument);
            for value in values {
                self.push(JUMP_IF_EQUAL, Label(on_match), Next, *value);
            }
            self.push(JUMP, Label(otherwise), Next, 0);
        }
        self.place(ALLOW);
        self.push(RETURN, Next, Next, libc::SECCOMP_RET_ALLOW);
        self.place(DENY);
        self.push(RETURN, Next, Next, eperm);
    }

    /// Resolves labels into relative forward jumps.
    fn finish(self) -> Result<Vec<sock_filter>, String> {
        let position = |label: usize| {
            self.placed
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, at)| *at)
                .ok_or_else(|| format!("seccomp filter: label {label} not placed"))
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, &(code, jt, jf, k))| {
                let offset = |target: Target| -> Result<usize, String> {
                    match target {
                        Next => Ok(0),
                        Label(label) => position(label)?
                            .checked_sub(at + 1)
                            .ok_or_else(|| "seccomp filter: backward jump".to_string()),
                    }
                };
                if code == JUMP {
                    let k = u32::try_from(offset(jt)?).map_err(|e| e.to_string())?;
                    return Ok(instruction(code, 0, 0, k));
                }
                let short = |target| {
                    u8::try_from(offset(target)?)
                        .map_err(|_| "seccomp filter: jump too far".to_string())
                };
                Ok(instruction(code, short(jt)?, short(jf)?, k))
            })
            .collect()
    }
}

/// The default filter, compiled once per process: the server calls
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
            errno: None,
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

    /// Runs `program` on a syscall the way the kernel does (the subset of
    /// classic BPF the compiler emits).
    fn run(program: &[sock_filter], arch: u32, nr: u32, argument: u32) -> u32 {
        let nr_at = offset_of!(libc::seccomp_data, nr) as u32;
        let arch_at = offset_of!(libc::seccomp_data, arch) as u32;
        let argument_at = offset_of!(libc::seccomp_data, args) as u32;
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let insn = program[pc];
            pc += 1;
            let jump = |taken: bool| if taken { insn.jt } else { insn.jf } as usize;
            match insn.code {
                LOAD if insn.k == nr_at => a = nr,
                LOAD if insn.k == arch_at => a = arch,
                LOAD if insn.k == argument_at => a = argument,
                JUMP_IF_EQUAL => pc += jump(a == insn.k),
                JUMP_IF_AT_LEAST => pc += jump(a >= insn.k),
                JUMP_IF_ANY_BIT => pc += jump(a & insn.k != 0),
                JUMP => pc += insn.k as usize,
                RETURN => return insn.k,
                other => panic!("unexpected instruction {other:#x} (k {:#x})", insn.k),
            }
        }
    }

    /// Every syscall of the deny-list, and every other number, gets the
    /// answer the list says.
    #[test]
    fn answers_every_syscall_as_listed() {
        let program = build_default_filter().unwrap();
        let allow = libc::SECCOMP_RET_ALLOW;
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let refused = |nr: u32, argument: u32| {
            let Some((_, refuse)) = DENIED.iter().find(|(s, _)| s.contains(&(nr as c_long))) else {
                return false;
            };
            match refuse {
                Always => true,
                AnyBitOf(mask) => argument & mask != 0,
                OneOf(values) => values.contains(&argument),
                NoneOf(values) => !values.contains(&argument),
            }
        };
        let arguments = [
            0,
            1,
            8,
            38,
            40,
            0x2_0000,
            libc::CLONE_NEWNET as u32,
            u32::MAX,
        ];
        for nr in (0..600).chain([u32::MAX]) {
            for argument in arguments {
                let expected = match nr {
                    n if n == libc::SYS_clone3 as u32 => {
                        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32
                    }
                    n if refused(n, argument) => eperm,
                    _ => allow,
                };
                let got = run(&program, AUDIT_ARCH_X86_64, nr, argument);
                assert_eq!(got, expected, "syscall {nr} with argument {argument:#x}");
            }
        }
        assert_eq!(
            run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 39, 0),
            eperm
        );
        assert_eq!(run(&program, 0x4000_0003, 20, 0), eperm, "i386");
    }

    /// Short enough that installing it per test stays cheap.
    #[test]
    fn is_a_search_not_a_chain() {
        let program = build_default_filter().unwrap();
        assert!(program.len() < 150, "{} instructions", program.len());
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
