#!/bin/sh
# test_cluster5.sh - test_cluster.sh with five nodes: each round the leader and a follower are
# SIGKILLed together (a majority of three stands and elects), 6 rounds (3 in make check), the
# lost-directory rejoin halfway; every node ends with exactly the original stream.
R=6
[ -n "${SL_TEST_QUICK:-}" ] && R=3
SL_CLUSTER_NODES=5 SL_CLUSTER_KILL=2 SL_CLUSTER_ROUNDS=$R SL_CLUSTER_NAME=test_cluster5 \
	exec sh tests/integration/test_cluster.sh
