#!/bin/sh
# Every test runs in its own cgroup: isotest reports its peak memory and CPU
# time (see the [peak ..., cpu ...] on its line and `--show-usage`). dd with
# a 64 MiB block size holds one 64 MiB buffer, so the peak is about 65 MiB.
dd if=/dev/zero of=/dev/null bs=64M count=1 status=none
