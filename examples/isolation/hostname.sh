#!/bin/sh
# Each test has its own UTS namespace: the hostname is `isotest`, and a test
# may change it without touching the host or other tests.
set -e
[ "$(hostname)" = isotest ]
hostname my-test-host
echo "hostname is now $(hostname), only in here"
