#!/bin/sh
# Each test has its own network namespace with only `lo`, up: servers on
# 127.0.0.1 work, with no port clashes between tests, and nothing outside is
# reachable.
/usr/sbin/ip -o link show
links=$(/usr/sbin/ip -o link show | cut -d: -f2 | tr -d ' ')
[ "$links" = lo ] && /usr/sbin/ip -o link show lo | grep -q '<LOOPBACK,UP'
