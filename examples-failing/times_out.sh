#!/bin/sh
# A hung test: run with --timeout 2s, it gets SIGTERM at 2 s, SIGKILL after
# the grace period (--grace), and is reported as TIMEOUT.
echo "waiting for something that never happens"
sleep 600
