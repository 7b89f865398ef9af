package tunbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// Options configures [Bench].
type Options struct {
	// Binary is the braid executable to run as server and client
	// (the braid command passes os.Executable()). Required.
	Binary string
	// Out receives the progress lines and the table, or the JSON
	// document. Nil means os.Stdout.
	Out io.Writer
	// Rounds is how many times each measurement is repeated, direct and
	// through braid alternately; medians are reported. Default 3.
	Rounds int
	// Bytes is the size of the single-connection download; the parallel
	// test moves the same total split over 16 connections. Default 1 GiB
	// (32 MiB with Quick). At least 1 MiB.
	Bytes int64
	// Quick uses small sizes (32 MiB, 200 echoes, 100 idle connections,
	// at most 200 new connections or 1 s) so that a run takes seconds;
	// the figures are rougher. For tests.
	Quick bool
	// JSON writes one JSON document (the Report) to Out instead of
	// progress lines and a table.
	JSON bool
	// Target is the HOST:PORT the in-process target server listens on.
	// Default "127.0.0.1:0" (any free port); with Via it must name a
	// fixed port, the one the other tunnels forward to.
	Target string
	// Via lists other tunnels, already running, to measure in the same
	// rounds as direct TCP and braid (each leading to Target). Bench
	// checks before the first round that each one reaches this run's
	// target.
	Via []Via
}

// Report is the outcome of [Bench]. Once returned it is not modified.
type Report struct {
	// Command is the bench process's command line.
	Command string `json:"command"`
	// Machine is where it ran.
	Machine Machine `json:"machine"`
	// ServerCommand and ClientCommand are the braid children's command
	// lines (BRAID_TOKEN is passed in the environment).
	ServerCommand string `json:"server_command"`
	ClientCommand string `json:"client_command"`
	// Target is the address of the target server, Vias the other
	// tunnels measured (see [Options]).
	Target string `json:"target"`
	Vias   []Via  `json:"vias,omitempty"`
	// Rounds is how many rounds were run.
	Rounds int `json:"rounds"`
	// Bytes is the single-connection download size.
	Bytes int64 `json:"bytes"`
	// ParallelConns connections downloaded ParallelBytes each at once.
	ParallelConns int   `json:"parallel_conns"`
	ParallelBytes int64 `json:"parallel_bytes_each"`
	// EchoRoundTrips is the number of timed round trips per latency
	// measurement (after EchoWarmup untimed ones).
	EchoRoundTrips int `json:"echo_round_trips"`
	EchoWarmup     int `json:"echo_warmup"`
	// ConnRateMax and ConnRateTime bound the connection-rate loop.
	ConnRateMax  int           `json:"conn_rate_max"`
	ConnRateTime time.Duration `json:"conn_rate_time_ns"`
	// IdleConns is how many idle connections were open for the RSS
	// figures.
	IdleConns int `json:"idle_conns"`
	// Metrics are the rows of the table, in order.
	Metrics []Metric `json:"metrics"`
	// Warnings lists things that did not stop the run but should be
	// looked at (a child that did not exit cleanly).
	Warnings []string `json:"warnings,omitempty"`
	// Elapsed is the duration of the whole run.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Metric is one row of the report: medians over the rounds.
type Metric struct {
	// Key names the metric in JSON and code, e.g. "echo_p99".
	Key string `json:"key"`
	// Name describes it for people.
	Name string `json:"name"`
	// Unit is "MiB/s", "µs", "conn/s" or "MiB".
	Unit string `json:"unit"`
	// HasDirect reports whether there is a direct (no tunnel) figure.
	HasDirect bool `json:"has_direct"`
	// Direct is the median of the direct measurements (if HasDirect),
	// Braid the median through the tunnel, Ratio Braid/Direct.
	Direct float64 `json:"direct,omitempty"`
	Braid  float64 `json:"braid"`
	Ratio  float64 `json:"ratio,omitempty"`
	// Goal is the target, in words ("" if none); Pass says whether it
	// was met (nil if there is no goal).
	Goal string `json:"goal,omitempty"`
	Pass *bool  `json:"pass,omitempty"`
	// DirectRounds and BraidRounds are the per-round figures.
	DirectRounds []float64 `json:"direct_rounds,omitempty"`
	BraidRounds  []float64 `json:"braid_rounds"`
	// Vias holds one entry per [Options].Via, in order (none without
	// Via).
	Vias []ViaFigure `json:"vias,omitempty"`
}

// ViaFigure is one other tunnel's figure in a [Metric].
type ViaFigure struct {
	// Name is the [Via]'s name.
	Name string `json:"name"`
	// Measured is false where the metric does not apply to the tunnel
	// (braid's client or server alone) or it has no PIDs (memory rows).
	Measured bool `json:"measured"`
	// Value is the median of Rounds; BraidRatio is the braid median over
	// Value.
	Value      float64   `json:"value,omitempty"`
	BraidRatio float64   `json:"braid_ratio,omitempty"`
	Rounds     []float64 `json:"rounds,omitempty"`
}

// Metric returns the metric with the given key, or nil.
func (r *Report) Metric(key string) *Metric {
	for i := range r.Metrics {
		if r.Metrics[i].Key == key {
			return &r.Metrics[i]
		}
	}
	return nil
}

// metricSpec defines a row: how it is named and judged.
type metricSpec struct {
	key, name, unit string
	direct          bool // measured directly, and through every via
	goal            string
	pass            func(direct, braid float64) bool
	viaRSS          bool // a memory row that vias with PIDs have
}

const (
	kDownload1  = "download_1conn"
	kDownloadN  = "download_parallel"
	kEchoP50    = "echo_p50"
	kEchoP99    = "echo_p99"
	kLoadedP50  = "loaded_echo_p50"
	kLoadedP99  = "loaded_echo_p99"
	kConnRate   = "conn_rate"
	kRSSClient  = "rss_client_idle"
	kRSSServer  = "rss_server_idle"
	kBaseClient = "rss_client_base"
	kBaseServer = "rss_server_base"
	kRSSTotal   = "rss_total_idle"
	kBaseTotal  = "rss_total_base"
)

func metricSpecs(r *Report) []metricSpec {
	atMost := func(v float64) func(_, b float64) bool { return func(_, b float64) bool { return b <= v } }
	specs := []metricSpec{
		{kDownload1, fmt.Sprintf("download, 1 connection, %s", mib(r.Bytes)), "MiB/s", true,
			"≥ 22 % of direct", func(d, b float64) bool { return b >= 0.22*d }, false},
		{kDownloadN, fmt.Sprintf("download, %d connections × %s", r.ParallelConns, mib(r.ParallelBytes)), "MiB/s", true, "", nil, false},
		{kEchoP50, "64 B echo p50", "µs", true, "≤ 100 µs", atMost(100), false},
		{kEchoP99, "64 B echo p99", "µs", true, "≤ 250 µs", atMost(250), false},
		{kLoadedP50, "64 B echo p50 during a download", "µs", true, "", nil, false},
		{kLoadedP99, "64 B echo p99 during a download", "µs", true, "≤ 1000 µs", atMost(1000), false},
		{kConnRate, "connect + 1 B echo + close, sequential", "conn/s", true, "≥ 4000/s", func(_, b float64) bool { return b >= 4000 }, false},
		{kRSSClient, fmt.Sprintf("client RSS, %d idle connections", r.IdleConns), "MiB", false, "≤ 16 MiB", atMost(16), false},
		{kRSSServer, fmt.Sprintf("server RSS, %d idle connections", r.IdleConns), "MiB", false, "≤ 16 MiB", atMost(16), false},
		{kBaseClient, "client RSS, no connections", "MiB", false, "", nil, false},
		{kBaseServer, "server RSS, no connections", "MiB", false, "", nil, false},
	}
	if len(r.Vias) > 0 {
		specs = append(specs,
			metricSpec{kRSSTotal, fmt.Sprintf("client + server RSS, %d idle connections", r.IdleConns), "MiB", false, "", nil, true},
			metricSpec{kBaseTotal, "client + server RSS, no connections", "MiB", false, "", nil, true})
	}
	return specs
}

// mib formats a byte count in MiB (or KiB below 1 MiB).
func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// Bench measures the braid tunnel against direct loopback TCP: it starts
// a braid server and client from o.Binary (see the package
// documentation), runs each measurement o.Rounds times, direct and
// through the tunnel alternately, and writes a table (or JSON) to o.Out.
// With o.Via, each measurement also runs through each of those tunnels,
// right after braid's, and the table gains a column per tunnel and the
// ratio of braid to the first one.
//
// The measurements: one connection downloading o.Bytes; 16 connections
// downloading o.Bytes/16 each at once; 64-byte echo round trips (p50,
// p99) on one connection, idle and while a download runs on another
// connection through the same path; sequential connect + 1-byte echo +
// close per second; and the resident memory of the client and server
// with 1 000 idle connections open through the tunnel (each round on a
// fresh pair), and with none. For a Via with PIDs the memory rows are the
// sum over those processes, which keep running across rounds (and may
// keep memory from earlier steps): its "no connections" figure is taken
// once, before the first round.
//
// Bench raises this process's RLIMIT_NOFILE soft limit to the hard limit
// (the children inherit it). It returns the report and a nil error only
// if every measurement succeeded; on error nothing started is left
// running (the Via tunnels are the caller's). Bench is safe to call from
// several goroutines, but the figures of concurrent runs disturb each
// other.
func Bench(ctx context.Context, o Options) (*Report, error) {
	began := time.Now()
	if o.Binary == "" {
		return nil, errors.New("bench: no braid binary given")
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	if o.Rounds < 1 || o.Rounds > 100 {
		return nil, fmt.Errorf("bench: %d rounds: choose between 1 and 100", o.Rounds)
	}
	if o.Bytes == 0 {
		o.Bytes = 1 << 30
		if o.Quick {
			o.Bytes = 32 << 20
		}
	}
	if o.Bytes < 1<<20 || o.Bytes > 1<<40 {
		return nil, fmt.Errorf("bench: %d bytes: choose between 1 MiB and 1 TiB", o.Bytes)
	}
	if err := checkVias(&o); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &Report{
		Command:        strings.Join(os.Args, " "),
		Machine:        machineInfo(o.Binary),
		Vias:           o.Via,
		Rounds:         o.Rounds,
		Bytes:          o.Bytes,
		ParallelConns:  16,
		ParallelBytes:  o.Bytes / 16,
		EchoRoundTrips: 5000,
		EchoWarmup:     500,
		ConnRateMax:    5000,
		ConnRateTime:   3 * time.Second,
		IdleConns:      1000,
	}
	if o.Quick {
		r.EchoRoundTrips, r.EchoWarmup = 200, 50
		r.ConnRateMax, r.ConnRateTime = 200, time.Second
		r.IdleConns = 100
	}

	limit, err := raiseNoFile()
	if err != nil {
		return nil, fmt.Errorf("bench: raise the open-file limit: %w", err)
	}
	// The bench process holds both ends of every idle connection.
	if need := uint64(2*r.IdleConns + 256); limit < need {
		return nil, fmt.Errorf("bench: the open-file limit is %d, %d idle connections need about %d: raise the hard limit (ulimit -Hn) and try again", limit, r.IdleConns, need)
	}

	dir, err := os.MkdirTemp("", "braid-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer os.RemoveAll(dir)
	home := filepath.Join(dir, "home")

	tgt, err := startTarget(o.Target)
	if err != nil {
		return nil, fmt.Errorf("bench: start the target server on --target %s: %w", o.Target, err)
	}
	defer tgt.close()
	r.Target = tgt.addr()
	for _, v := range o.Via {
		if err := identify(ctx, v.Addr, tgt); err != nil {
			return nil, fmt.Errorf("bench: --via %s: %w (is that tunnel running and forwarding %s to the target %s?)", v.Name, err, v.Addr, r.Target)
		}
	}

	token := newToken()
	lspec := forward{"-L", "0:" + tgt.addr()}
	tun, err := startTunnel(ctx, o.Binary, home, token, nil, lspec)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			tun.stop()
		}
	}()
	r.ServerCommand = commandLine(o.Binary, tun.serverArgs)
	r.ClientCommand = commandLine(o.Binary, tun.clientArgs)

	var progress io.Writer = io.Discard
	if !o.JSON {
		progress = o.Out
		r.writeHeader(o.Out)
	}
	b := &bencher{r: r, tgt: tgt, addrs: []string{tgt.addr(), tun.listen["-L"]}, names: []string{"direct", "braid"}, rounds: map[string][][]float64{}}
	for _, v := range o.Via {
		b.addrs = append(b.addrs, v.Addr)
		b.names = append(b.names, v.Name)
	}
	for range r.ParallelConns {
		b.bufs = append(b.bufs, make([]byte, copyBufSize))
	}
	// A via runs across rounds and keeps memory it once needed, so its
	// no-connections figure is taken once, before any traffic.
	for i, v := range o.Via {
		if len(v.PIDs) == 0 {
			continue
		}
		base, err := sumRSS(v.PIDs)
		if err != nil {
			return nil, fmt.Errorf("bench: --via %s: %w", v.Name, err)
		}
		b.add(kBaseTotal, sideVia+i, float64(base)/(1<<20))
		fmt.Fprintf(progress, "%s: %d processes, %.1f MiB before the first round\n", v.Name, len(v.PIDs), float64(base)/(1<<20))
	}
	for round := 1; round <= o.Rounds; round++ {
		fmt.Fprintf(progress, "round %d of %d\n", round, o.Rounds)
		if err := b.round(ctx, progress); err != nil {
			return nil, fmt.Errorf("bench: round %d: %w", round, err)
		}
		if err := b.rssRound(ctx, progress, o.Binary, home, token, lspec); err != nil {
			return nil, fmt.Errorf("bench: round %d: %w", round, err)
		}
		for i := range o.Via {
			if err := b.viaRSSRound(ctx, progress, i); err != nil {
				return nil, fmt.Errorf("bench: round %d: --via %s: %w", round, o.Via[i].Name, err)
			}
		}
	}
	stopped = true
	if err := tun.stop(); err != nil {
		r.Warnings = append(r.Warnings, err.Error())
	}
	r.Warnings = append(r.Warnings, b.warnings...)
	b.summarize()
	r.Elapsed = time.Since(began)
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return r, enc.Encode(r)
	}
	return r, r.WriteTable(o.Out)
}

// checkVias defaults o.Target and validates it and o.Via.
func checkVias(o *Options) error {
	if o.Target == "" {
		o.Target = "127.0.0.1:0"
	}
	if err := checkHostPort(o.Target, true); err != nil {
		return fmt.Errorf("--target: %w", err)
	}
	if len(o.Via) == 0 {
		return nil
	}
	if _, port, _ := net.SplitHostPort(o.Target); port == "0" {
		return errors.New("--via needs --target HOST:PORT with a fixed port, the one the other tunnels forward to")
	}
	seen := map[string]bool{}
	for _, v := range o.Via {
		if err := v.check(); err != nil {
			return fmt.Errorf("--via %s: %w", v, err)
		}
		if seen[v.Name] {
			return fmt.Errorf("--via: the name %q is used twice: give each tunnel its own", v.Name)
		}
		seen[v.Name] = true
		if _, err := sumRSS(v.PIDs); err != nil {
			return fmt.Errorf("--via %s: %w (is the process running?)", v, err)
		}
	}
	o.Via = slices.Clone(o.Via)
	return nil
}

// commandLine renders a child's command line for people.
func commandLine(binary string, args []string) string {
	return "BRAID_TOKEN=… " + binary + " " + strings.Join(args, " ")
}

// Sides of a measurement: index 0 is direct, 1 braid, 2 and on the vias.
const (
	sideDirect = 0
	sideBraid  = 1
	sideVia    = 2
)

// bencher holds one Bench run's state. Not safe for concurrent use.
type bencher struct {
	r        *Report
	tgt      *target
	addrs    []string // per side: the target, braid's -L listener, each via
	names    []string // per side: "direct", "braid", each via's name
	bufs     [][]byte // one read buffer per parallel download
	rounds   map[string][][]float64
	warnings []string
}

// add records one round's figure for key on a side.
func (b *bencher) add(key string, side int, v float64) {
	p := b.rounds[key]
	if p == nil {
		p = make([][]float64, len(b.addrs))
		b.rounds[key] = p
	}
	p[side] = append(p[side], v)
}

// addAll records one round's figures for key, one per side.
func (b *bencher) addAll(key string, vs []float64) {
	for side, v := range vs {
		b.add(key, side, v)
	}
}

// stepTimeout bounds one measurement moving n bytes.
func stepTimeout(n int64) time.Duration {
	return time.Minute + time.Duration(n/(4<<20))*time.Second
}

// sides runs f against every side's address in turn (direct, braid, the
// vias), each under its own deadline, and returns the results by side.
// Before each side it waits until the target has seen the previous
// side's connections close, so that one path's leftovers (a tunnel
// still draining a cancelled download) do not weigh on the next.
func sides[T any](ctx context.Context, b *bencher, timeout time.Duration, f func(ctx context.Context, addr string) (T, error)) ([]T, error) {
	out := make([]T, len(b.addrs))
	for side, addr := range b.addrs {
		if err := b.tgt.waitIdle(ctx, 30*time.Second); err != nil {
			return nil, fmt.Errorf("before the %s measurement: %w", b.names[side], err)
		}
		sctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %v", timeout))
		v, err := f(sctx, addr)
		cancel()
		if err != nil {
			if side == sideDirect {
				return nil, fmt.Errorf("direct: %w", err)
			}
			return nil, fmt.Errorf("through %s: %w", b.names[side], err)
		}
		out[side] = v
	}
	return out, nil
}

// mapped applies f to every element of v.
func mapped[T any](v []T, f func(T) float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = f(x)
	}
	return out
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
func micros(d time.Duration) float64         { return float64(d) / float64(time.Microsecond) }

// round runs every measurement once on every side.
func (b *bencher) round(ctx context.Context, progress io.Writer) error {
	r := b.r
	// line prints "direct N unit braid N unit [via N unit...]"; with
	// direct and braid only it is the original two-column form.
	line := func(what string, vs []float64, unit string) {
		var sb strings.Builder
		fmt.Fprintf(&sb, "  %-34s", what)
		for side, v := range vs {
			if side == len(vs)-1 {
				fmt.Fprintf(&sb, " %s %9.1f %s\n", b.names[side], v, unit)
			} else {
				fmt.Fprintf(&sb, " %s %9.1f %-6s", b.names[side], v, unit)
			}
		}
		io.WriteString(progress, sb.String())
	}

	durs, err := sides(ctx, b, stepTimeout(r.Bytes), func(ctx context.Context, addr string) (time.Duration, error) {
		return download(ctx, addr, r.Bytes, b.bufs[0])
	})
	if err != nil {
		return fmt.Errorf("1-connection download: %w", err)
	}
	vs := mapped(durs, func(d time.Duration) float64 { return mibps(r.Bytes, d) })
	b.addAll(kDownload1, vs)
	line("download, 1 connection", vs, "MiB/s")

	total := r.ParallelBytes * int64(r.ParallelConns)
	durs, err = sides(ctx, b, stepTimeout(total), func(ctx context.Context, addr string) (time.Duration, error) {
		return parallelDownload(ctx, addr, r.ParallelBytes, b.bufs[:r.ParallelConns])
	})
	if err != nil {
		return fmt.Errorf("parallel download: %w", err)
	}
	vs = mapped(durs, func(d time.Duration) float64 { return mibps(total, d) })
	b.addAll(kDownloadN, vs)
	line(fmt.Sprintf("download, %d connections", r.ParallelConns), vs, "MiB/s")

	echoTimeout := time.Minute + time.Duration(r.EchoRoundTrips)*10*time.Millisecond
	lats, err := sides(ctx, b, echoTimeout, func(ctx context.Context, addr string) (latency, error) {
		return echoLatency(ctx, addr, r.EchoWarmup, r.EchoRoundTrips)
	})
	if err != nil {
		return fmt.Errorf("echo latency: %w", err)
	}
	p50 := mapped(lats, func(l latency) float64 { return micros(l.p50) })
	p99 := mapped(lats, func(l latency) float64 { return micros(l.p99) })
	b.addAll(kEchoP50, p50)
	b.addAll(kEchoP99, p99)
	line("echo p50", p50, "µs")
	line("echo p99", p99, "µs")

	type loaded struct {
		lat  latency
		rate float64
	}
	lds, err := sides(ctx, b, echoTimeout, func(ctx context.Context, addr string) (loaded, error) {
		lat, rate, err := loadedLatency(ctx, addr, r.EchoWarmup, r.EchoRoundTrips, b.bufs[0])
		return loaded{lat, rate}, err
	})
	if err != nil {
		return fmt.Errorf("echo latency during a download: %w", err)
	}
	p50 = mapped(lds, func(l loaded) float64 { return micros(l.lat.p50) })
	p99 = mapped(lds, func(l loaded) float64 { return micros(l.lat.p99) })
	b.addAll(kLoadedP50, p50)
	b.addAll(kLoadedP99, p99)
	line("echo p50 during a download", p50, "µs")
	line("echo p99 during a download", p99, "µs")
	line("  (the download meanwhile)", mapped(lds, func(l loaded) float64 { return l.rate / (1 << 20) }), "MiB/s")

	rates, err := sides(ctx, b, r.ConnRateTime+time.Minute, func(ctx context.Context, addr string) (float64, error) {
		return connRate(ctx, addr, r.ConnRateMax, r.ConnRateTime)
	})
	if err != nil {
		return fmt.Errorf("connection rate: %w", err)
	}
	b.addAll(kConnRate, rates)
	line("connect + echo + close", rates, "conn/s")
	return nil
}

// rssRound starts a fresh server and client, reads their RSS, opens
// r.IdleConns idle connections through them, reads it again, and stops
// them. With vias it waits until the target has seen every connection
// close, so that the vias' memory step starts from a quiet target.
func (b *bencher) rssRound(ctx context.Context, progress io.Writer, binary, home, token string, lspec forward) (err error) {
	ctx, cancel := context.WithTimeoutCause(ctx, 2*time.Minute, errors.New("the idle-connection test timed out after 2m"))
	defer cancel()
	tun, err := startTunnel(ctx, binary, home, token, nil, lspec)
	if err != nil {
		return fmt.Errorf("idle connections: %w", err)
	}
	defer func() {
		if serr := tun.stop(); serr != nil && err == nil {
			b.warnings = append(b.warnings, serr.Error())
		}
		if err == nil && len(b.r.Vias) > 0 {
			err = b.tgt.waitIdle(ctx, 30*time.Second)
		}
	}()
	rss := func(key string, c *child) (float64, error) {
		v, err := readRSS(c.pid())
		if err != nil {
			return 0, fmt.Errorf("RSS of braid %s: %w", c.name, err)
		}
		f := float64(v) / (1 << 20)
		b.add(key, sideBraid, f)
		return f, nil
	}
	bc, err := rss(kBaseClient, tun.client)
	if err != nil {
		return err
	}
	bs, err := rss(kBaseServer, tun.server)
	if err != nil {
		return err
	}
	conns, err := openIdle(ctx, tun.listen["-L"], b.r.IdleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return err
	}
	ic, err := rss(kRSSClient, tun.client)
	if err != nil {
		return err
	}
	is, err := rss(kRSSServer, tun.server)
	if err != nil {
		return err
	}
	if len(b.r.Vias) > 0 {
		b.add(kBaseTotal, sideBraid, bc+bs)
		b.add(kRSSTotal, sideBraid, ic+is)
	}
	fmt.Fprintf(progress, "  %-34s client %7.1f MiB  server %7.1f MiB\n", "RSS, no connections", bc, bs)
	fmt.Fprintf(progress, "  %-34s client %7.1f MiB  server %7.1f MiB\n", fmt.Sprintf("RSS, %d idle connections", len(conns)), ic, is)
	return nil
}

// viaRSSRound reads the summed RSS of via i's processes, opens
// r.IdleConns idle connections through it, reads it again (the figure
// recorded), closes them and waits until the target has seen them close.
// Without PIDs it does nothing.
func (b *bencher) viaRSSRound(ctx context.Context, progress io.Writer, i int) (err error) {
	v := b.r.Vias[i]
	if len(v.PIDs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, 2*time.Minute, errors.New("the idle-connection test timed out after 2m"))
	defer cancel()
	base, err := sumRSS(v.PIDs)
	if err != nil {
		return err
	}
	conns, err := openIdle(ctx, v.Addr, b.r.IdleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		if err == nil {
			err = b.tgt.waitIdle(ctx, 30*time.Second)
		}
	}()
	if err != nil {
		return err
	}
	idle, err := sumRSS(v.PIDs)
	if err != nil {
		return err
	}
	bf, idf := float64(base)/(1<<20), float64(idle)/(1<<20)
	b.add(kRSSTotal, sideVia+i, idf)
	fmt.Fprintf(progress, "  %-34s %s %7.1f MiB before, %7.1f MiB with them\n", fmt.Sprintf("RSS, %d idle connections", len(conns)), v.Name, bf, idf)
	return nil
}

// median returns the median of v (the mean of the middle two if even).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// summarize fills r.Metrics from the recorded rounds.
func (b *bencher) summarize() {
	for _, s := range metricSpecs(b.r) {
		m := Metric{Key: s.key, Name: s.name, Unit: s.unit, HasDirect: s.direct, Goal: s.goal}
		p := b.rounds[s.key]
		if p != nil {
			m.BraidRounds = p[sideBraid]
			m.Braid = median(p[sideBraid])
			if s.direct {
				m.DirectRounds = p[sideDirect]
				m.Direct = median(p[sideDirect])
				if m.Direct > 0 {
					m.Ratio = m.Braid / m.Direct
				}
			}
		}
		for i, v := range b.r.Vias {
			f := ViaFigure{Name: v.Name}
			if p != nil && (s.direct || s.viaRSS) && len(p[sideVia+i]) > 0 {
				f.Measured = true
				f.Rounds = p[sideVia+i]
				f.Value = median(f.Rounds)
				if f.Value > 0 {
					f.BraidRatio = m.Braid / f.Value
				}
			}
			m.Vias = append(m.Vias, f)
		}
		if s.pass != nil {
			ok := s.pass(m.Direct, m.Braid)
			m.Pass = &ok
		}
		b.r.Metrics = append(b.r.Metrics, m)
	}
}

// writeHeader prints what is measured and where.
func (r *Report) writeHeader(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "command:  %s\n", r.Command)
	fmt.Fprintf(w, "machine:  %d CPUs, %s/%s, %s\n", m.CPUs, m.OS, m.Arch, orUnknown(m.CPUModel))
	fmt.Fprintf(w, "go:       %s\n", m.GoVersion)
	fmt.Fprintf(w, "server:   %s\n", r.ServerCommand)
	fmt.Fprintf(w, "client:   %s\n", r.ClientCommand)
	if len(r.Vias) > 0 {
		fmt.Fprintf(w, "target:   %s\n", r.Target)
		for _, v := range r.Vias {
			pids := "no PIDs: no memory figures"
			if len(v.PIDs) > 0 {
				pids = "memory = sum of PIDs " + strings.Trim(fmt.Sprint(v.PIDs), "[]")
			}
			fmt.Fprintf(w, "via:      %s at %s (%s)\n", v.Name, v.Addr, pids)
		}
	}
	fmt.Fprintf(w, "sizes:    1 × %s; %d × %s at once; %d echo round trips (after %d warm-up); up to %d new connections or %v; %d idle connections\n",
		mib(r.Bytes), r.ParallelConns, mib(r.ParallelBytes), r.EchoRoundTrips, r.EchoWarmup, r.ConnRateMax, r.ConnRateTime, r.IdleConns)
	if len(r.Vias) > 0 {
		fmt.Fprintf(w, "rounds:   %d, direct, braid, %s in turn; medians below\n\n", r.Rounds, strings.Join(r.viaNames(), ", "))
		return
	}
	fmt.Fprintf(w, "rounds:   %d, direct and braid alternately; medians below\n\n", r.Rounds)
}

// viaNames returns the names of r.Vias.
func (r *Report) viaNames() []string {
	names := make([]string, len(r.Vias))
	for i, v := range r.Vias {
		names[i] = v.Name
	}
	return names
}

func orUnknown(s string) string {
	if s == "" {
		return "CPU model unknown"
	}
	return s
}

// WriteTable writes the report as a table: metric | direct | braid |
// ratio | goal, followed by any warnings. With vias the columns are
// metric | direct | braid | each via | braid/direct | braid/first via |
// goal.
func (r *Report) WriteTable(w io.Writer) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	head := []string{"metric", "direct", "braid"}
	head = append(head, r.viaNames()...)
	if len(r.Vias) > 0 {
		head = append(head, "braid/direct", "braid/"+r.Vias[0].Name)
	} else {
		head = append(head, "ratio")
	}
	head = append(head, "goal")
	rule := make([]string, len(head))
	for i, h := range head {
		rule[i] = strings.Repeat("-", utf8.RuneCountInString(h))
	}
	fmt.Fprintln(tw, "\n"+strings.Join(head, "\t"))
	fmt.Fprintln(tw, strings.Join(rule, "\t"))
	for _, m := range r.Metrics {
		direct, ratio := "—", "—"
		if m.HasDirect {
			direct = formatValue(m.Direct, m.Unit)
			ratio = fmt.Sprintf("%.2f×", m.Ratio)
		}
		goal := m.Goal
		if m.Pass != nil {
			if *m.Pass {
				goal += "  ✓"
			} else {
				goal += "  ✗ missed"
			}
		}
		braid := "—"
		if len(m.BraidRounds) > 0 {
			braid = formatValue(m.Braid, m.Unit)
		}
		row := []string{m.Name, direct, braid}
		for _, f := range m.Vias {
			row = append(row, orDash(f.Measured, formatValue(f.Value, m.Unit)))
		}
		row = append(row, ratio)
		if len(m.Vias) > 0 {
			f := m.Vias[0]
			row = append(row, orDash(f.Measured && f.Value > 0, fmt.Sprintf("%.2f×", f.BraidRatio)))
		}
		row = append(row, goal)
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(table.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	for _, warn := range r.Warnings {
		if _, err := fmt.Fprintf(w, "warning: %s\n", warn); err != nil {
			return err
		}
	}
	if len(r.Vias) > 0 {
		_, err := fmt.Fprintf(w, "(medians of %d round(s); %.1f s in all; braid/X = braid's median / X's median: above 1 is better for MiB/s and conn/s, below 1 for µs and MiB)\n", r.Rounds, r.Elapsed.Seconds())
		return err
	}
	_, err := fmt.Fprintf(w, "(medians of %d round(s); %.1f s in all; ratio = braid / direct)\n", r.Rounds, r.Elapsed.Seconds())
	return err
}

// orDash returns s if ok, else "—".
func orDash(ok bool, s string) string {
	if ok {
		return s
	}
	return "—"
}

// formatValue renders a figure with its unit.
func formatValue(v float64, unit string) string {
	switch unit {
	case "MiB":
		return fmt.Sprintf("%.1f %s", v, unit)
	default:
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}
