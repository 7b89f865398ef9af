package tunnel

import (
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/session"
)

// Snapshot is a point-in-time view of a tunnel client or server, for
// metrics and the status line. Safe to read once returned; the tunnel
// never mutates a Snapshot after handing it out.
type Snapshot struct {
	// Role is "client" or "server".
	Role string
	// Connected reports, on a client, whether a session to the server is
	// up and authenticated. On a server it is true while it listens.
	Connected bool
	// Sessions is the number of authenticated sessions (1 or 0 on a
	// client; live clients on a server).
	Sessions int
	// Unauthenticated is the number of connections still in the TLS,
	// HELLO or auth phase (server only).
	Unauthenticated int
	// Reconnects counts, on a client, the times the link to the server
	// came back: sessions established after the first, plus sessions
	// resumed on a new connection (Session.Resumes); on a server, the
	// sessions accepted in total (resumes are not new sessions).
	Reconnects uint64
	// AuthFailures counts refused logins: on a server, tokens it refused;
	// on a client, refusals it received.
	AuthFailures uint64
	// RTT is the smoothed round trip of the current session's keepalive
	// PINGs (client), or the largest over live sessions (server); 0 if
	// unknown.
	RTT time.Duration
	// Session sums session.Stats over the live sessions (for a client,
	// the current one). Counters restart when a session is replaced.
	Session session.Stats
	// Forwards lists every forward, in the order they were configured
	// (client), or every -R listener bound for a client plus one entry
	// per forward kind served for clients' -L/-D traffic (server).
	Forwards []ForwardStats
}

// ForwardStats counts the traffic of one forward.
type ForwardStats struct {
	// Name is the forward as the user wrote it, e.g. "-L 8080:db:5432",
	// "-R 0:localhost:3000", "-D 1080"; on a server, "-L/-D" for
	// outbound connections it made for clients, or "-R <spec>" with the
	// client's user name appended ("-R 9000:localhost:80 (alice)").
	Name string
	// Kind is "local", "remote" or "dynamic".
	Kind string
	// Listen is the address actually listened on ("" if the listener is
	// on the other side or not bound yet).
	Listen string
	// Open is the number of forwarded connections now open.
	Open int64
	// Total counts forwarded connections accepted so far.
	Total uint64
	// Failed counts connections that could not be forwarded (target
	// refused or unreachable, rule denied, link down too long).
	Failed uint64
	// BytesUp counts bytes from the client side toward the server side,
	// BytesDown the other way, over all connections of the forward.
	BytesUp, BytesDown uint64
}

// counters is the live, concurrently updated form of ForwardStats.
type counters struct {
	name, kind string
	listen     atomic.Value // string
	open       atomic.Int64
	total      atomic.Uint64
	failed     atomic.Uint64
	up, down   atomic.Uint64
}

func newCounters(name, kind string) *counters {
	c := &counters{name: name, kind: kind}
	c.listen.Store("")
	return c
}

func (c *counters) snapshot() ForwardStats {
	return ForwardStats{
		Name: c.name, Kind: c.kind, Listen: c.listen.Load().(string),
		Open: c.open.Load(), Total: c.total.Load(), Failed: c.failed.Load(),
		BytesUp: c.up.Load(), BytesDown: c.down.Load(),
	}
}

// addStats adds b's counters into a.
func addStats(a *session.Stats, b session.Stats) {
	a.BytesSent += b.BytesSent
	a.BytesReceived += b.BytesReceived
	a.FramesSent += b.FramesSent
	a.FramesReceived += b.FramesReceived
	a.DataSent += b.DataSent
	a.DataReceived += b.DataReceived
	a.Writes += b.Writes
	a.StreamsOpened += b.StreamsOpened
	a.StreamsAccepted += b.StreamsAccepted
	a.StreamsRefused += b.StreamsRefused
	a.OpenStreams += b.OpenStreams
	a.FlowControlBlocked += b.FlowControlBlocked
	a.ProtocolErrors += b.ProtocolErrors
	if b.RTT > a.RTT {
		a.RTT = b.RTT
	}
	a.Compression = b.Compression
}
