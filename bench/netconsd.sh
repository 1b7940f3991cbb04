#!/usr/bin/env bash
# kcrash serve side by side with Meta's netconsd and with a bare recvmmsg receiver
# (the raw drain), each in its own process, against the same generator in one run
# (bench/serve -netconsd): records/s at zero loss, CPU per record and memory of
# each. Loss is what the kernel dropped at each daemon's sockets (/proc/net/udp*)
# plus what kcrash shed under overload.
#
# netconsd is not part of this repository and this script does not build it. It is
# https://github.com/facebook/netconsd (BSD-style licence; measured at commit
# 66d3e28). Build it anywhere outside this repository, e.g.:
#
#   git clone https://github.com/facebook/netconsd /tmp/netconsd
#   make -C /tmp/netconsd -s netconsd && make -C /tmp/netconsd/modules -s logger-simple.so
#
# then run:  NETCONSD=/tmp/netconsd/netconsd bench/netconsd.sh [HOSTS] [SECONDS]
#
# netconsd runs with its defaults (1 listener, 2 workers, the system's default socket
# buffer) and modules/logger-simple.so, which writes one log file per host as kcrash
# writes raw logs; kcrash serve runs with its defaults (SQLite, raw logs, spool).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NETCONSD:-}" ] || [ ! -x "$NETCONSD" ]; then
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	echo "bench/netconsd.sh: set NETCONSD to a netconsd binary" >&2
	exit 2
fi
exec go run ./bench/serve -netconsd "$NETCONSD" -hosts "${1:-10000}" -seconds "${2:-5}" -tries "${TRIES:-6}"
