#!/bin/sh
# A fork bomb stops at the pids limit (64 here, set in isotest.toml; by
# default 1024), inside this test's cgroup; the host never notices. isotest
# names the limit in the report, and the bomb dies with the container when
# the test ends.
# The timer starts first, and the bomb from a single fork: once the bomb
# holds every allowed process, this shell itself could not fork again (a
# shell forks each side of a pipeline itself, and a failed fork ends it).
sleep 1 &
timer=$!
bomb() { bomb | bomb & }
(bomb) 2>/dev/null &
wait "$timer"
echo "still here: the bomb hit the process limit"
