#!/bin/sh
# A crashing test: killed by SIGSEGV, reported as SIGNAL (SIGSEGV).
ulimit -c 0
kill -SEGV $$
