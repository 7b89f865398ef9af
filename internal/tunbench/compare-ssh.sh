#!/usr/bin/env bash
# compare-ssh.sh: run "braid bench" with an OpenSSH -L forward measured in
# the same rounds (a developer tool for BENCHMARKS.md, not for CI; Linux).
#
# It creates a temporary directory with a host key, a client key and an
# sshd_config for 127.0.0.1 on a free port, starts sshd (-D, so its PID is
# known) and "ssh -N -L VIA:127.0.0.1:TARGET", then runs
#
#   braid bench --target 127.0.0.1:TARGET --via ssh=127.0.0.1:VIA,PIDS "$@"
#
# where PIDS are the ssh client and the sshd processes serving its
# connection (their memory is summed). Every process it starts is stopped
# by PID on exit. Arguments go to braid bench, e.g. --rounds 4, or more
# --via NAME=127.0.0.1:PORT,... for tunnels you started to TARGET yourself
# (set TARGET_PORT to fix the target's port for them).
#
# Environment: BRAID (binary; default: build ./cmd/braid of this repo),
# SSHD (default: sshd on PATH or /usr/sbin/sshd), SSH_OPTS (extra ssh
# options, e.g. "-c aes128-gcm@openssh.com"), TARGET_PORT, VIA_PORT.
set -euo pipefail

die() { echo "compare-ssh: $*" >&2; exit 1; }

[[ -r /proc/net/tcp ]] || die "needs Linux (/proc/net/tcp and /proc/PID/status)"
command -v ssh >/dev/null || die "ssh not found: install openssh-client"
command -v ssh-keygen >/dev/null || die "ssh-keygen not found: install openssh-client"
SSHD=${SSHD:-$(command -v sshd || echo /usr/sbin/sshd)}
[[ -x $SSHD ]] || die "sshd not found: install openssh-server or set SSHD=/path/to/sshd"
[[ $SSHD == /* ]] || SSHD=$(cd "$(dirname "$SSHD")" && pwd)/$(basename "$SSHD") # sshd needs an absolute path

tmp=$(mktemp -d "${TMPDIR:-/tmp}/braid-compare-ssh.XXXXXX")
ssh_pid= sshd_pid=
# cleanup stops ssh, then any sshd process still serving it (by PID, and
# only while it is still sshd's child), then sshd, waiting for each.
cleanup() {
	local c
	if [[ -n $ssh_pid ]]; then kill "$ssh_pid" 2>/dev/null || true; wait "$ssh_pid" 2>/dev/null || true; fi
	if [[ -n $sshd_pid ]]; then
		for c in $(pgrep -P "$sshd_pid" || true); do kill "$c" 2>/dev/null || true; done
		kill "$sshd_pid" 2>/dev/null || true
		wait "$sshd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# listening PORT: true if something listens on PORT (any local address).
listening() { port_used "$1" 0A; }

# port_used PORT [STATE]: true if a TCP socket (in STATE, hex, if given)
# has local port PORT.
port_used() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" -v st="${2:-}" '(st == "" || $4 == st) && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: print a port no socket uses, below the ephemeral range so
# that no outgoing connection takes it meanwhile (another program still
# may; sshd, ssh or braid bench then fail and say so).
free_port() {
	local lo p i
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	((lo > 12000)) || lo=32768
	for ((i = 0; i < 100; i++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		port_used "$p" || { echo "$p"; return; }
	done
	die "found no free port"
}

# wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.1 s until it
# succeeds, or fail after SECONDS.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 10; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	die "$what did not happen within ${secs}s"
}

# descendants PID: print PID's descendants, one per line.
descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		descendants "$c"
	done
}

if [[ -z ${BRAID:-} ]]; then
	repo=$(cd "$(dirname "$0")/../.." && pwd)
	echo "compare-ssh: building braid from $repo" >&2
	(cd "$repo" && go build -o "$tmp/braid" ./cmd/braid)
	BRAID=$tmp/braid
fi

# Many idle connections go through ssh and sshd too.
ulimit -n "$(ulimit -Hn)"

ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/id"
cp "$tmp/id.pub" "$tmp/authorized_keys"
chmod 600 "$tmp/authorized_keys"
sshd_port=$(free_port)
target_port=${TARGET_PORT:-$(free_port)}
via_port=${VIA_PORT:-$(free_port)}
cat >"$tmp/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $tmp/host_key
AuthorizedKeysFile $tmp/authorized_keys
PidFile $tmp/sshd.pid
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowTcpForwarding yes
EOF
# Privilege separation needs this directory when sshd runs as root.
if [[ $(id -u) == 0 && ! -d /run/sshd ]]; then mkdir -p /run/sshd && chmod 755 /run/sshd; fi

"$SSHD" -D -f "$tmp/sshd_config" -E "$tmp/sshd.log" &
sshd_pid=$!
wait_for 10 "sshd listening on 127.0.0.1:$sshd_port (see $tmp/sshd.log)" listening "$sshd_port"

# shellcheck disable=SC2086 # SSH_OPTS is split on purpose
ssh -i "$tmp/id" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
	-o LogLevel=ERROR -o ExitOnForwardFailure=yes -o BatchMode=yes ${SSH_OPTS:-} \
	-p "$sshd_port" -N -T -L "$via_port:127.0.0.1:$target_port" "$(id -un)@127.0.0.1" </dev/null &
ssh_pid=$!
wait_for 20 "ssh -L listening on $via_port (is sshd refusing the key? see $tmp/sshd.log)" listening "$via_port"
session=$(descendants "$sshd_pid" | paste -sd, -)
[[ -n $session ]] || die "found no sshd process serving the ssh connection"

# shellcheck disable=SC2086
cipher=$(ssh -G ${SSH_OPTS:-} -p "$sshd_port" 127.0.0.1 2>/dev/null </dev/null | awk '$1 == "ciphers" { split($2, c, ","); print c[1] }')
echo "ssh:      $(ssh -V 2>&1), first cipher $cipher; ssh -N -L $via_port:127.0.0.1:$target_port -p $sshd_port $(id -un)@127.0.0.1 (pid $ssh_pid)"
echo "sshd:     $SSHD -D -f sshd_config on 127.0.0.1:$sshd_port (pid $sshd_pid; serving processes $session)"

status=0
"$BRAID" bench --target "127.0.0.1:$target_port" --via "ssh=127.0.0.1:$via_port,$ssh_pid,$session" "$@" || status=$?
exit "$status"
