package metrics_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/braidmux/braid/internal/metrics"
	"github.com/braidmux/braid/internal/tunnel"
	"github.com/braidmux/braid/session"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// snapVar is a concurrency-safe snapshot source for tests.
type snapVar struct {
	mu sync.Mutex
	s  tunnel.Snapshot
	n  int // calls
}

func (v *snapVar) get() tunnel.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.n++
	return v.s
}

func (v *snapVar) set(s tunnel.Snapshot) {
	v.mu.Lock()
	v.s = s
	v.mu.Unlock()
}

func (v *snapVar) calls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n
}

func sample() tunnel.Snapshot {
	return tunnel.Snapshot{
		Role:            "client",
		Connected:       true,
		Sessions:        1,
		Unauthenticated: 2,
		Reconnects:      3,
		AuthFailures:    4,
		RTT:             1500 * time.Microsecond,
		Session: session.Stats{
			BytesSent:          1000,
			BytesReceived:      2000,
			OpenStreams:        5,
			FlowControlBlocked: 250 * time.Millisecond,
			ProtocolErrors:     6,
		},
		Forwards: []tunnel.ForwardStats{
			{Name: "-L 8080:db:5432", Kind: "local", Open: 7, Total: 8, Failed: 9, BytesUp: 10, BytesDown: 11},
			{Name: "-D 1080", Kind: "dynamic", Listen: "127.0.0.1:1080", Open: 0, Total: 1, BytesUp: 2, BytesDown: 3},
		},
	}
}

const wantSample = `
# HELP braid_auth_failures_total Logins refused (server) or refusals received (client).
# TYPE braid_auth_failures_total counter
braid_auth_failures_total{role="client"} 4
# HELP braid_connected 1 if the client's link to the server is up, or the server is listening; else 0.
# TYPE braid_connected gauge
braid_connected{role="client"} 1
# HELP braid_flow_control_blocked_seconds_total Time writers waited for flow-control credit, over the live sessions.
# TYPE braid_flow_control_blocked_seconds_total counter
braid_flow_control_blocked_seconds_total{role="client"} 0.25
# HELP braid_forward_bytes_total Bytes forwarded; up is from the client side toward the server side.
# TYPE braid_forward_bytes_total counter
braid_forward_bytes_total{direction="down",forward="-D 1080",kind="dynamic",role="client"} 3
braid_forward_bytes_total{direction="down",forward="-L 8080:db:5432",kind="local",role="client"} 11
braid_forward_bytes_total{direction="up",forward="-D 1080",kind="dynamic",role="client"} 2
braid_forward_bytes_total{direction="up",forward="-L 8080:db:5432",kind="local",role="client"} 10
# HELP braid_forward_connections_open Forwarded connections open now.
# TYPE braid_forward_connections_open gauge
braid_forward_connections_open{forward="-D 1080",kind="dynamic",role="client"} 0
braid_forward_connections_open{forward="-L 8080:db:5432",kind="local",role="client"} 7
# HELP braid_forward_connections_total Forwarded connections accepted.
# TYPE braid_forward_connections_total counter
braid_forward_connections_total{forward="-D 1080",kind="dynamic",role="client"} 1
braid_forward_connections_total{forward="-L 8080:db:5432",kind="local",role="client"} 8
# HELP braid_forward_failures_total Connections that could not be forwarded.
# TYPE braid_forward_failures_total counter
braid_forward_failures_total{forward="-D 1080",kind="dynamic",role="client"} 0
braid_forward_failures_total{forward="-L 8080:db:5432",kind="local",role="client"} 9
# HELP braid_protocol_errors_total Protocol errors seen by the live sessions.
# TYPE braid_protocol_errors_total counter
braid_protocol_errors_total{role="client"} 6
# HELP braid_rtt_seconds Smoothed round-trip time of keepalive pings (server: largest over live sessions); 0 if unknown.
# TYPE braid_rtt_seconds gauge
braid_rtt_seconds{role="client"} 0.0015
# HELP braid_session_bytes_total Bytes on the tunnel connection(s), framing included, over the live sessions.
# TYPE braid_session_bytes_total counter
braid_session_bytes_total{direction="received",role="client"} 2000
braid_session_bytes_total{direction="sent",role="client"} 1000
# HELP braid_sessions Authenticated sessions now live.
# TYPE braid_sessions gauge
braid_sessions{role="client"} 1
# HELP braid_sessions_established_total Client: sessions established after the first (reconnects). Server: sessions accepted.
# TYPE braid_sessions_established_total counter
braid_sessions_established_total{role="client"} 3
# HELP braid_streams_open Streams open over the live sessions.
# TYPE braid_streams_open gauge
braid_streams_open{role="client"} 5
# HELP braid_unauthenticated_connections Connections still in the TLS, HELLO or authentication phase.
# TYPE braid_unauthenticated_connections gauge
braid_unauthenticated_connections{role="client"} 2
`

var braidNames = []string{
	"braid_auth_failures_total", "braid_connected", "braid_flow_control_blocked_seconds_total",
	"braid_forward_bytes_total", "braid_forward_connections_open", "braid_forward_connections_total",
	"braid_forward_failures_total", "braid_protocol_errors_total", "braid_rtt_seconds",
	"braid_session_bytes_total", "braid_sessions", "braid_sessions_established_total",
	"braid_streams_open", "braid_unauthenticated_connections",
}

func TestHandlerScrape(t *testing.T) {
	v := &snapVar{s: sample()}
	m := metrics.New("client", v.get)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(wantSample), braidNames...); err != nil {
		t.Fatal(err)
	}

	// Values follow the snapshot at scrape time; no caching.
	s := sample()
	s.Connected = false
	s.Forwards[0].Open = 0
	s.Forwards[0].Total = 100
	v.set(s)
	body := scrape(t, srv.URL)
	for _, want := range []string{
		`braid_connected{role="client"} 0`,
		`braid_forward_connections_open{forward="-L 8080:db:5432",kind="local",role="client"} 0`,
		`braid_forward_connections_total{forward="-L 8080:db:5432",kind="local",role="client"} 100`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	// The Go and process collectors are registered too.
	for _, want := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

func TestOneSnapshotPerScrape(t *testing.T) {
	v := &snapVar{s: sample()}
	m := metrics.New("server", v.get)
	if _, err := m.Gatherer().Gather(); err != nil {
		t.Fatal(err)
	}
	if n := v.calls(); n != 1 {
		t.Fatalf("snap called %d times in one gather, want 1", n)
	}
}

func TestLabelValuesEscaped(t *testing.T) {
	s := tunnel.Snapshot{Role: "server", Forwards: []tunnel.ForwardStats{
		{Name: `-R 9000:localhost:80 (al "ice" \ x)`, Kind: "remote", Open: 1},
		{Name: "line\nbreak", Kind: "local", Open: 2},
		{Name: "bad\xffutf8", Kind: "local", Open: 3},
	}}
	m := metrics.New("server", func() tunnel.Snapshot { return s })
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	want := `
# HELP braid_forward_connections_open Forwarded connections open now.
# TYPE braid_forward_connections_open gauge
braid_forward_connections_open{forward="-R 9000:localhost:80 (al \"ice\" \\ x)",kind="remote",role="server"} 1
braid_forward_connections_open{forward="line\nbreak",kind="local",role="server"} 2
braid_forward_connections_open{forward="bad\uFFFDutf8",kind="local",role="server"} 3
`
	// testutil parses want, so "\uFFFD" must be the real rune there.
	want = strings.Replace(want, `\uFFFD`, "\uFFFD", 1)
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "braid_forward_connections_open"); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, srv.URL)
	if !strings.Contains(body, `forward="-R 9000:localhost:80 (al \"ice\" \\ x)"`) {
		t.Errorf("quotes/backslash not escaped in exposition:\n%s", body)
	}
}

func TestDuplicateForwardsSummed(t *testing.T) {
	s := tunnel.Snapshot{Role: "client", Forwards: []tunnel.ForwardStats{
		{Name: "-L 0:web:80", Kind: "local", Open: 1, Total: 2, Failed: 3, BytesUp: 4, BytesDown: 5},
		{Name: "-L 0:web:80", Kind: "local", Open: 10, Total: 20, Failed: 30, BytesUp: 40, BytesDown: 50},
		{Name: "-L 0:web:80", Kind: "dynamic", Open: 100},
	}}
	m := metrics.New("client", func() tunnel.Snapshot { return s })
	want := `
# HELP braid_forward_connections_open Forwarded connections open now.
# TYPE braid_forward_connections_open gauge
braid_forward_connections_open{forward="-L 0:web:80",kind="dynamic",role="client"} 100
braid_forward_connections_open{forward="-L 0:web:80",kind="local",role="client"} 11
# HELP braid_forward_bytes_total Bytes forwarded; up is from the client side toward the server side.
# TYPE braid_forward_bytes_total counter
braid_forward_bytes_total{direction="down",forward="-L 0:web:80",kind="dynamic",role="client"} 0
braid_forward_bytes_total{direction="down",forward="-L 0:web:80",kind="local",role="client"} 55
braid_forward_bytes_total{direction="up",forward="-L 0:web:80",kind="dynamic",role="client"} 0
braid_forward_bytes_total{direction="up",forward="-L 0:web:80",kind="local",role="client"} 44
`
	if err := testutil.GatherAndCompare(m.Gatherer(), strings.NewReader(want),
		"braid_forward_connections_open", "braid_forward_bytes_total"); err != nil {
		t.Fatal(err)
	}
	// The caller's snapshot is not modified by merging.
	if s.Forwards[0].Open != 1 {
		t.Fatalf("snapshot mutated: %+v", s.Forwards[0])
	}
}

func TestConcurrentScrapes(t *testing.T) {
	v := &snapVar{s: sample()}
	m := metrics.New("client", v.get)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 5 {
				if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(wantSample), braidNames...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	m := metrics.New("client", sample)
	addr, err := metrics.Serve(ctx, "127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String()
	if err := testutil.ScrapeAndCompare(url+"/metrics", strings.NewReader(wantSample), braidNames...); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(url + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: status %d, want 404", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr.String(), time.Second)
		if err != nil {
			break // listener closed
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("metrics server still accepting 5s after ctx was cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m := metrics.New("server", sample)

	_, err = metrics.Serve(t.Context(), ln.Addr().String(), m)
	if err == nil {
		t.Fatal("Serve on a port in use: no error")
	}
	if !strings.Contains(err.Error(), "cannot listen") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("error does not say what happened: %v", err)
	}

	if _, err := metrics.Serve(t.Context(), "127.0.0.1", m); err == nil {
		t.Error("Serve on an address without a port: no error")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := metrics.Serve(ctx, "127.0.0.1:0", m); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve with a done ctx: err = %v, want context.Canceled", err)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}
