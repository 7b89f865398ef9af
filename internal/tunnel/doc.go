// Package tunnel is the forwarding engine behind the braid command: a
// Server that authenticates clients and serves their forwards, and a
// Client that keeps one session to a server (reconnecting as needed)
// and carries its -L, -R and -D forwards over it.
package tunnel
