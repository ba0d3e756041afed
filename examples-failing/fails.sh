#!/bin/sh
# A failing test: a non-zero exit is FAIL, and isotest shows its output.
echo "expected 42, got 41" >&2
exit 1
