#!/bin/sh
# The smallest test: exit 0 to pass, anything else to fail.
# isotest tells a test where it runs through ISOTEST and ISOTEST_TEST_NAME.
echo "hello from $ISOTEST_TEST_NAME (ISOTEST=$ISOTEST)"
[ "$ISOTEST" = 1 ]
