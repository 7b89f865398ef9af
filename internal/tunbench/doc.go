// Package tunbench runs the braid tunnel for real, as child processes, to
// show it working ([Demo]) and to measure it against plain loopback TCP
// ([Bench]).
//
// Both start "braid server" and "braid client" from a given binary (the
// braid command passes its own executable) on 127.0.0.1 with port 0, a
// fresh temporary HOME and XDG directories and a random BRAID_TOKEN, and
// learn the chosen addresses and the server's fingerprint from the
// children's log lines ("server listening", "forward ready"). The
// traffic's far end is an in-process server on [Options].Target
// (127.0.0.1:0 unless set).
//
// Every child is stopped by PID (SIGTERM, then a kill after five seconds)
// and waited for before Bench or Demo returns, also when the context is
// cancelled or a step fails; every load loop is bounded in count and time.
//
// # Other tunnels in the same run
//
// [Options].Via names tunnels that the caller has started, each
// forwarding a local address to the fixed [Options].Target; Bench
// measures them in the same interleaved rounds (direct, braid, then each
// via), so the table can give same-run ratios such as braid/ssh. Before
// the first round it asks the target's identity through each via, so a
// forward leading elsewhere is an error, not a wrong figure.
//
// compare-ssh.sh in this directory does the whole setup for OpenSSH (Linux;
// for developers, not CI): in a temporary directory it makes host and
// client keys and an sshd_config on 127.0.0.1 with free ports, starts
// sshd and "ssh -N -L", runs
//
//	braid bench --target 127.0.0.1:T --via ssh=127.0.0.1:V,SSH_PID,SSHD_PIDS "$@"
//
// and stops ssh and sshd by PID on exit:
//
//	./internal/tunbench/compare-ssh.sh --rounds 4
//
// BRAID=/path/to/braid skips building ./cmd/braid; SSH_OPTS adds ssh
// options (e.g. a cipher); TARGET_PORT fixes the target port so that
// more --via tunnels (started by hand) can be passed in "$@".
package tunbench
