#!/bin/sh
# A test that starts a daemon and forgets it still passes, but isotest
# reports the leftover as a leaked process, and it dies with the container:
# nothing keeps running on the host.
sleep 600 &
echo "started a background sleep (PID $!) and exited"
