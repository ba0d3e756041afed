#!/usr/bin/env python3
"""Where isotest's per-test time goes, from a kernel trace (tracefs) of one
`isotest run`: reads the trace text that bench/profile records, follows the
runner's process tree, and prints for each phase of a test the median and
mean milliseconds over the run's tests (the first test, which also pays for
warming up, is left out when there are more than two).

Phases, in the order they happen (runner = isotest's scheduler thread,
supervisor = the process that supervises one container: a fork of the
sandbox server, init = PID 1 of the container, test = the process that
becomes the test command):

  runner: cgroups, hand-over  first test-cgroup mkdir .. supervisor forked
                           (request to the server, which forks)
  supervisor: startup      forked .. unshare(CLONE_NEWPID)
                           (pidfd to the runner, read spec, open cgroup.procs)
  supervisor: newpid+fork  unshare(CLONE_NEWPID) .. init forked
  init: unshare ns         unshare(NEWNS|NEWUTS|NEWIPC|NEWNET) itself
  init: rootfs             unshare done .. umount of the old root done
  init: host, lo, fork     .. test process forked
  test: fork..first write  test forked .. its first cgroup.procs write begins
  test: join cgroups       first cgroup.procs write .. last cgroup attached
  test: caps + exec        .. test command's execve done
  test: runs               .. the test process exits
  init: exit               test exit .. init exits
  supervisor: report       init exit .. report written (fd 3)
  runner: collect, next    report written .. next test's first mkdir
                           (usage figures, result, next spec; the cgroup
                           rmdirs happen on the janitor thread meanwhile)

and, off the test's path (the runner goes on meanwhile):

  (supervisor: teardown)   report written .. supervisor exits (the mount
                           namespace and overlay go with it)
  (janitor: cgroup rmdir)  report written .. last test-cgroup rmdir

Usage: breakdown.py TRACE_TEXT
"""

import re
import statistics
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+)(.*)$")
CGROUP_TEST = re.compile(r"path=\S*/isotest-[0-9a-f]+x[0-9a-f]+-(\d+)$")
CLONE_NEWPID = 0x20000000


def parse(path):
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                continue
            m = LINE.match(line)
            if m:
                _comm, pid, ts, name, rest = m.groups()
                events.append((float(ts) * 1000.0, int(pid), name, rest))
    return events


def field(rest, key):
    m = re.search(rf"\b{key}[=:] ?(\S+?)[,)\s]", rest + " ")
    return m.group(1) if m else None


def main():
    events = parse(sys.argv[1])
    # The runner: the first process that execs an isotest binary.
    runner = next(
        (pid for _, pid, name, rest in events
         if name == "sched_process_exec" and re.search(r"filename=\S*isotest ", rest)),
        None,
    )
    if runner is None:
        sys.exit("breakdown: no isotest exec in the trace")
    ours = {runner}
    children = defaultdict(list)
    forks = []  # (ts, child) of every fork in the runner's tree, threads too
    for ts, pid, name, rest in events:
        if name == "sched_process_fork" and pid in ours:
            child = int(field(rest, "child_pid"))
            ours.add(child)
            children[pid].append((ts, child))
            forks.append((ts, child))
    events = [e for e in events if e[1] in ours]
    by_pid = defaultdict(list)
    for e in events:
        by_pid[e[1]].append(e)

    # Test n: its cgroup mkdirs and rmdirs (runner side).
    mkdirs, rmdirs = defaultdict(list), defaultdict(list)
    for ts, pid, name, rest in events:
        m = CGROUP_TEST.search(rest)
        if m and name == "cgroup_mkdir":
            mkdirs[int(m.group(1))].append((ts, pid))
        elif m and name == "cgroup_rmdir":
            rmdirs[int(m.group(1))].append(ts)

    def first(pid, pred, after=0.0):
        for ts, _, name, rest in by_pid[pid]:
            if ts >= after and pred(name, rest):
                return ts
        return None

    def last(pid, pred):
        found = None
        for ts, _, name, rest in by_pid[pid]:
            if pred(name, rest):
                found = ts
        return found

    phases = defaultdict(list)
    order = []
    numbers = sorted(mkdirs)
    def unshares_pid(pid):
        return first(pid, lambda nm, r: nm == "sys_unshare" and "unshare_flags: 0x2" in r)

    for i, n in enumerate(numbers):
        start, _thread = min(mkdirs[n])
        # The test's supervisor: the first process forked after its cgroup
        # was made that creates a PID namespace (at -j1).
        forked, helper = next(((ts, c) for ts, c in forks if ts >= start and unshares_pid(c)),
                              (None, None))
        if helper is None or n not in rmdirs:
            continue
        newpid = unshares_pid(helper)
        init = next((c for ts, c in children[helper]), None)
        if init is None:
            continue
        init_forked = children[helper][0][0]
        ns_start = first(init, lambda nm, r: nm == "sys_unshare" and "unshare_flags" in r)
        ns_end = first(init, lambda nm, r: nm == "sys_unshare" and "->" in r)
        umounted = last(init, lambda nm, r: nm == "sys_umount" and "->" in r)
        test = next((c for ts, c in children[init]), None)
        if None in (ns_start, ns_end, umounted, test):
            continue
        test_forked = children[init][0][0]
        first_write = first(test, lambda nm, r: nm == "sys_write" and "fd:" in r)
        joined = last(test, lambda nm, r: nm == "cgroup_attach_task")
        test_execd = first(test, lambda nm, r: nm == "sched_process_exec")
        test_exit = first(test, lambda nm, r: nm == "sched_process_exit")
        init_exit = first(init, lambda nm, r: nm == "sched_process_exit")
        helper_exit = first(helper, lambda nm, r: nm == "sched_process_exit")
        reported = first(helper, lambda nm, r: nm == "sys_write" and "fd: 3," in r)
        cleaned = max(rmdirs[n])
        if None in (first_write, joined, test_execd, test_exit, init_exit, helper_exit, reported):
            continue
        nxt = mkdirs[numbers[i + 1]] if i + 1 < len(numbers) else None
        marks = [
            ("runner: cgroups, hand-over", start, forked),
            ("supervisor: startup", forked, newpid),
            ("supervisor: newpid+fork", newpid, init_forked),
            ("init: unshare ns", ns_start, ns_end),
            ("init: rootfs", ns_end, umounted),
            ("init: host, lo, fork", umounted, test_forked),
            ("test: fork..first write", test_forked, first_write),
            ("test: join cgroups", first_write, joined),
            ("test: caps + exec", joined, test_execd),
            ("test: runs", test_execd, test_exit),
            ("init: exit", test_exit, init_exit),
            ("supervisor: report", init_exit, reported),
        ]
        if nxt:
            marks.append(("runner: collect, next", reported, min(nxt)[0]))
            marks.append(("TOTAL (mkdir to next mkdir)", start, min(nxt)[0]))
        marks.append(("(supervisor: teardown)", reported, helper_exit))
        marks.append(("(janitor: cgroup rmdir)", reported, cleaned))
        for label, a, b in marks:
            if label not in order:
                order.append(label)
            phases[label].append((n, b - a))

    skip_first = len(numbers) > 2
    print(f"{'phase':30} {'median ms':>10} {'mean ms':>9} {'max ms':>8}  tests")
    for label in order:
        values = [v for n, v in phases[label] if not (skip_first and n == numbers[0])]
        if values:
            print(f"{label:30} {statistics.median(values):10.3f} {statistics.mean(values):9.3f}"
                  f" {max(values):8.3f}  {len(values)}")


if __name__ == "__main__":
    main()
