#!/usr/bin/env bash
# Run a command in a network namespace whose loopback delays every packet (netem), e.g.
#
#   sudo benchmarks/netns_latency.sh 2ms uv run python -m benchmarks.remote_bench --quick \
#        --no-atdata07 --no-cache --readahead-sweep
#
# The namespace has its own loopback, so the host's loopback and its services are untouched;
# the namespace is deleted on exit. Needs root, iproute2 (ip, tc) and a kernel with the netem
# qdisc (sch_netem). Where netem is missing (some containers and VMs), use the user-space proxy
# instead: `python -m benchmarks.remote_bench --delay-ms 2 ...` (benchmarks/latency_proxy.py).
set -euo pipefail
delay=${1:?usage: netns_latency.sh DELAY COMMAND...}
shift
ns=atdbench$$
ip netns add "$ns"
trap 'ip netns del "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
if ! ip netns exec "$ns" tc qdisc add dev lo root netem delay "$delay"; then
  echo "netem is not available here: use remote_bench --delay-ms (benchmarks/latency_proxy.py)" >&2
  exit 2
fi
ip netns exec "$ns" "$@"
