// Package tunnel is the forwarding engine behind the braid command: a
// Server that authenticates clients and serves their forwards, and a
// Client that keeps one session to a server (reconnecting as needed) and
// carries its -L, -R and -D forwards over it. cmd/braid adds flags, TLS
// trust, logging, metrics and signals around it.
//
// # Protocol
//
// One braid session (package session) runs over the client's connection
// to the server, normally TLS. Every forwarded TCP connection is one
// stream. A stream starts with one header message from the side that
// opened it and one reply from the other; then it carries the forwarded
// connection's bytes untouched, a FIN as a CloseWrite, a reset as a
// stream RESET. A message is a 2-byte big-endian length (at most 8 KiB)
// and a JSON object.
//
//   - Login. The client's first stream is the control stream: it sends
//     {version, token, instance, remote: [{id, spec, bind, port}]} and the
//     server answers {ok, code, error, user, remote: [{id, listen,
//     error}]} within the server's auth timeout. A refused login (code
//     "auth" or "version") ends the client: it is not retried. The server
//     forwards nothing and binds nothing before a login succeeds; it
//     accepts no other stream first.
//   - -L and -D. The client opens a stream with {kind: "L" or "D", addr:
//     "HOST:PORT"}; the server checks its rules, dials, and answers {ok}
//     or {ok: false, code: "denied"|"refused"|"unreachable"|"limit",
//     error}. For -L the client does not wait for the answer before
//     sending the connection's first bytes (the server reads them only
//     once it has dialed); a refusal resets the local connection. For -D
//     the SOCKS5 reply waits for the answer, and names are resolved by the
//     server.
//   - -R. The server listens for each -R forward of the login; for each
//     connection it opens a stream with {kind: "R", id} and the client
//     dials the forward's target and answers as above.
//   - Resumption. The client makes its session with session.Dial and the
//     server accepts through a session.Listener, so a broken connection
//     does not end the session: the client dials again and resumes it,
//     every forwarded connection carries on byte for byte, and nobody
//     logs in again (ResumeTimeout, --resume-timeout, 60 s by default).
//   - Reconnection. When a session cannot be resumed (the server
//     restarted, or the timeout passed) the client logs in again on a new
//     session. instance is random per client process. A login with the
//     instance of a session the server still holds (one still waiting to
//     be resumed, or whose link died without either side noticing yet)
//     closes that session first, so its -R ports are free for the new
//     one: "port already in use" cannot follow a reconnect. A server frees
//     a client's ports the moment its session ends.
//
// # Goroutines
//
// Server.Serve and Client.Run own every goroutine they start: a
// handshake per connection before login (the session.Listener's, then
// the login's), an accept loop per session and per listener, the client's
// resume watcher during an outage, and two per forwarded connection (one
// per direction).
// All of them have exited when Serve (after Close or Shutdown) or Run
// returns.
package tunnel
