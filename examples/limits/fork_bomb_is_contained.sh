#!/bin/sh
# A fork bomb stops at the pids limit (--pids, default 1024), inside this
# test's cgroup; the host never notices. isotest names the limit in the
# report, and the bomb dies with the container when the test ends.
bomb() { bomb | bomb & }
bomb 2>/dev/null
sleep 1
echo "still here: the bomb hit the process limit"
