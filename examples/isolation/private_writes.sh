#!/bin/sh
# The root filesystem is a throwaway overlay of the host's: write anywhere
# (/etc, /usr, the test's own directory) and it is gone when the test ends.
set -e
echo "127.0.0.1 db.example.test" >> /etc/hosts
echo "built by a test" > /usr/local/bin/isotest-example-tool
echo "scratch" > ./isotest-example-scratch
grep -q db.example.test /etc/hosts
echo "wrote /etc/hosts, /usr/local/bin and $(pwd): none of it reaches the host"
