package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/braidmux/braid/internal/tunnel"
)

// Metrics is a Prometheus registry exposing one tunnel's snapshot plus the
// Go runtime and process metrics. It is immutable after New; Handler and
// Serve may be called from any goroutine, any number of times.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
}

// New returns Metrics for a tunnel side whose role ("client" or "server")
// becomes the constant label role on every braid_ metric. snap is called
// once per scrape, possibly from several goroutines at once if scrapes
// overlap; it must be cheap and safe for concurrent use.
func New(role string, snap func() tunnel.Snapshot) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newCollector(role, snap),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// Serve what could be gathered rather than nothing if one
		// collector fails (the process collector can, on odd systems).
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          reg,
		EnableOpenMetrics: true,
	})
	return &Metrics{reg: reg, handler: h}
}

// Handler returns the HTTP handler serving the metrics in the Prometheus
// text (or, if the scraper asks, OpenMetrics) format. It serves any path;
// mount it at /metrics.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gatherer returns the registry behind Handler, for tests and for callers
// that want to merge it into another exposition.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Serve listens on addr (HOST:PORT, exactly as given: a non-loopback host
// exposes the metrics to the network; port 0 picks a free port) and serves
// m at /metrics in a background goroutine until ctx is done, when the
// listener and any open scrape connections are closed.
//
// Serve returns once the listener is bound, with the address actually
// bound. If it cannot listen (bad address, port in use), it returns an
// error at once and starts nothing.
func Serve(ctx context.Context, addr string, m *Metrics) (net.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("metrics: not serving on %s: %w", addr, err)
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %q: %w (choose a free HOST:PORT for --metrics, or port 0 for any)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "braid: metrics are at /metrics")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	// Close (not Shutdown) on ctx done: a scrape in flight is not worth
	// delaying the process exit for.
	context.AfterFunc(ctx, func() { srv.Close() })
	go func() {
		// Serve returns http.ErrServerClosed after Close. Any other error
		// (Accept failing) also ends serving; there is no one to report
		// it to, since the caller has moved on.
		_ = srv.Serve(ln)
	}()
	return ln.Addr(), nil
}

// collector converts a tunnel.Snapshot into metrics at scrape time.
type collector struct {
	snap func() tunnel.Snapshot

	connected, sessions, unauth, established, authFailures  *prometheus.Desc
	rtt, streamsOpen, blocked, sessionBytes, protocolErrors *prometheus.Desc
	fwdOpen, fwdTotal, fwdFailed, fwdBytes                  *prometheus.Desc
}

func newCollector(role string, snap func() tunnel.Snapshot) *collector {
	cl := prometheus.Labels{"role": validUTF8(role)}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("braid_"+name, help, labels, cl)
	}
	return &collector{
		snap:           snap,
		connected:      d("connected", "1 if the client's link to the server is up, or the server is listening; else 0."),
		sessions:       d("sessions", "Authenticated sessions now live."),
		unauth:         d("unauthenticated_connections", "Connections still in the TLS, HELLO or authentication phase."),
		established:    d("sessions_established_total", "Client: sessions established after the first (reconnects). Server: sessions accepted."),
		authFailures:   d("auth_failures_total", "Logins refused (server) or refusals received (client)."),
		rtt:            d("rtt_seconds", "Smoothed round-trip time of keepalive pings (server: largest over live sessions); 0 if unknown."),
		streamsOpen:    d("streams_open", "Streams open over the live sessions."),
		blocked:        d("flow_control_blocked_seconds_total", "Time writers waited for flow-control credit, over the live sessions."),
		sessionBytes:   d("session_bytes_total", "Bytes on the tunnel connection(s), framing included, over the live sessions.", "direction"),
		protocolErrors: d("protocol_errors_total", "Protocol errors seen by the live sessions."),
		fwdOpen:        d("forward_connections_open", "Forwarded connections open now.", "forward", "kind"),
		fwdTotal:       d("forward_connections_total", "Forwarded connections accepted.", "forward", "kind"),
		fwdFailed:      d("forward_failures_total", "Connections that could not be forwarded.", "forward", "kind"),
		fwdBytes:       d("forward_bytes_total", "Bytes forwarded; up is from the client side toward the server side.", "forward", "kind", "direction"),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.connected, c.sessions, c.unauth, c.established, c.authFailures,
		c.rtt, c.streamsOpen, c.blocked, c.sessionBytes, c.protocolErrors,
		c.fwdOpen, c.fwdTotal, c.fwdFailed, c.fwdBytes,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one call of snap per scrape.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	gauge(c.connected, connected)
	gauge(c.sessions, float64(s.Sessions))
	gauge(c.unauth, float64(s.Unauthenticated))
	counter(c.established, float64(s.Reconnects))
	counter(c.authFailures, float64(s.AuthFailures))
	gauge(c.rtt, s.RTT.Seconds())
	gauge(c.streamsOpen, float64(s.Session.OpenStreams))
	counter(c.blocked, s.Session.FlowControlBlocked.Seconds())
	counter(c.sessionBytes, float64(s.Session.BytesSent), "sent")
	counter(c.sessionBytes, float64(s.Session.BytesReceived), "received")
	counter(c.protocolErrors, float64(s.Session.ProtocolErrors))

	for _, f := range mergeForwards(s.Forwards) {
		name, kind := f.Name, f.Kind
		gauge(c.fwdOpen, float64(f.Open), name, kind)
		counter(c.fwdTotal, float64(f.Total), name, kind)
		counter(c.fwdFailed, float64(f.Failed), name, kind)
		counter(c.fwdBytes, float64(f.BytesUp), name, kind, "up")
		counter(c.fwdBytes, float64(f.BytesDown), name, kind, "down")
	}
}

// mergeForwards makes label values valid UTF-8 (the registry refuses
// anything else) and sums forwards that share a name and kind, since one
// scrape must not carry two series with the same labels. Order is kept.
func mergeForwards(in []tunnel.ForwardStats) []tunnel.ForwardStats {
	type key struct{ name, kind string }
	out := make([]tunnel.ForwardStats, 0, len(in))
	idx := make(map[key]int, len(in))
	for _, f := range in {
		f.Name, f.Kind = validUTF8(f.Name), validUTF8(f.Kind)
		k := key{f.Name, f.Kind}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, f)
			continue
		}
		m := &out[i]
		m.Open += f.Open
		m.Total += f.Total
		m.Failed += f.Failed
		m.BytesUp += f.BytesUp
		m.BytesDown += f.BytesDown
	}
	return out
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
