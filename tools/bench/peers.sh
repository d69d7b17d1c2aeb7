#!/bin/sh
# Installs the benchmark's peers, Mosquitto and etcd, from Debian's
# packages when they are missing (make bench runs it). The bench starts
# its own brokers and cluster on free loopback ports and stops them; the
# packages' own services are not started here: a policy-rc.d denies their
# start for the length of the install, unless the system has one already.
set -eu

missing=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have mosquitto || missing="$missing mosquitto"
have etcd || missing="$missing etcd-server"
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if ! command -v apt-get >/dev/null 2>&1; then
	echo "bench: the peers are missing ($missing ) and there is no apt-get: install them by hand" >&2
	exit 1
fi
echo "bench: installing$missing from Debian's packages" >&2
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
	trap '$sudo rm -f "$policy"' EXIT INT TERM
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
# Nor are they started at boot: the bench needs only the binaries, and a
# Mosquitto on port 1883 would take the port a Vigil node listens on by
# default.
if command -v systemctl >/dev/null 2>&1; then
	for p in $missing; do
		case $p in
		mosquitto) $sudo systemctl disable mosquitto.service >/dev/null 2>&1 || true ;;
		etcd-server) $sudo systemctl disable etcd.service >/dev/null 2>&1 || true ;;
		esac
	done
fi
