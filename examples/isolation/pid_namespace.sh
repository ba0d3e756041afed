#!/bin/sh
# Each test has its own PID namespace: PID 1 is isotest's init, and the
# test sees only its own few processes, never the host's.
ps -e -o pid,args
count=$(ps -e --no-headers | wc -l)
echo "this test sees $count processes; its own PID is $$"
[ "$count" -lt 10 ] && [ "$PPID" -eq 1 ]
