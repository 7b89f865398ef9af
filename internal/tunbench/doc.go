// Package tunbench runs the braid tunnel for real, as child processes, to
// show it working ([Demo]) and to measure it against plain loopback TCP
// ([Bench]).
//
// Both start "braid server" and "braid client" from a given binary (the
// braid command passes its own executable) on 127.0.0.1 with port 0, a
// fresh temporary HOME and XDG directories and a random BRAID_TOKEN, and
// learn the chosen addresses and the server's fingerprint from the
// children's log lines ("server listening", "forward ready"). The
// traffic's far end is an in-process server on 127.0.0.1:0.
//
// Every child is stopped by PID (SIGTERM, then a kill after five seconds)
// and waited for before Bench or Demo returns, also when the context is
// cancelled or a step fails; every load loop is bounded in count and time.
package tunbench
