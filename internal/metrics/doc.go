// Package metrics exposes a braid tunnel's counters as Prometheus metrics.
//
// A [Metrics] owns its own prometheus.Registry holding one custom collector
// plus the standard Go runtime and process collectors. The custom collector
// has no goroutine and keeps no state: on every scrape it calls the
// snapshot function given to [New] once and converts the returned
// tunnel.Snapshot into constant metrics. Every metric carries a constant
// "role" label ("client" or "server", as given to New).
//
// Metrics (all prefixed braid_):
//
//	braid_connected                          gauge   1 if the link is up (client) or the server listens
//	braid_sessions                           gauge   authenticated sessions now
//	braid_unauthenticated_connections        gauge   connections still in TLS/HELLO/auth (server)
//	braid_sessions_established_total         counter Snapshot.Reconnects: on a client the times the link
//	                                                 came back (sessions after the first, plus resumes), on
//	                                                 a server the sessions accepted in total
//	braid_auth_failures_total                counter logins refused (server) or refusals received (client)
//	braid_rtt_seconds                        gauge   smoothed keepalive RTT, 0 if unknown
//	braid_streams_open                       gauge   open streams over the live sessions
//	braid_flow_control_blocked_seconds_total counter time writers waited for flow-control credit
//	braid_session_bytes_total{direction}     counter bytes on the connection(s), framing included;
//	                                                 direction is "sent" or "received"
//	braid_protocol_errors_total              counter protocol errors seen by the live sessions
//
// and per forward, labelled forward (its name as the user wrote it) and kind
// ("local", "remote", "dynamic"):
//
//	braid_forward_connections_open           gauge   forwarded connections open now
//	braid_forward_connections_total          counter forwarded connections accepted
//	braid_forward_failures_total             counter connections that could not be forwarded
//	braid_forward_bytes_total{direction}     counter bytes forwarded; "up" is from the client
//	                                                 side toward the server side, "down" the reverse
//
// The session-level counters (bytes, protocol errors, flow-control time)
// are sums over the live sessions, so they restart when a session is
// replaced; Prometheus' rate() and increase() treat a decrease as a counter
// reset, which is what it is. Two forwards with the same name and kind are
// reported as one series holding their sums.
package metrics
