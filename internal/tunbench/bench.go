package tunbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
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
	direct          bool
	goal            string
	pass            func(direct, braid float64) bool
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
)

func metricSpecs(r *Report) []metricSpec {
	atMost := func(v float64) func(_, b float64) bool { return func(_, b float64) bool { return b <= v } }
	return []metricSpec{
		{kDownload1, fmt.Sprintf("download, 1 connection, %s", mib(r.Bytes)), "MiB/s", true,
			"≥ 22 % of direct", func(d, b float64) bool { return b >= 0.22*d }},
		{kDownloadN, fmt.Sprintf("download, %d connections × %s", r.ParallelConns, mib(r.ParallelBytes)), "MiB/s", true, "", nil},
		{kEchoP50, "64 B echo p50", "µs", true, "≤ 100 µs", atMost(100)},
		{kEchoP99, "64 B echo p99", "µs", true, "≤ 250 µs", atMost(250)},
		{kLoadedP50, "64 B echo p50 during a download", "µs", true, "", nil},
		{kLoadedP99, "64 B echo p99 during a download", "µs", true, "≤ 1000 µs", atMost(1000)},
		{kConnRate, "connect + 1 B echo + close, sequential", "conn/s", true, "≥ 4000/s", func(_, b float64) bool { return b >= 4000 }},
		{kRSSClient, fmt.Sprintf("client RSS, %d idle connections", r.IdleConns), "MiB", false, "≤ 16 MiB", atMost(16)},
		{kRSSServer, fmt.Sprintf("server RSS, %d idle connections", r.IdleConns), "MiB", false, "≤ 16 MiB", atMost(16)},
		{kBaseClient, "client RSS, no connections", "MiB", false, "", nil},
		{kBaseServer, "server RSS, no connections", "MiB", false, "", nil},
	}
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
//
// The measurements: one connection downloading o.Bytes; 16 connections
// downloading o.Bytes/16 each at once; 64-byte echo round trips (p50,
// p99) on one connection, idle and while a download runs on another
// connection; sequential connect + 1-byte echo + close per second; and
// the resident memory of the client and server with 1 000 idle
// connections open through the tunnel (each round on a fresh pair), and
// with none.
//
// Bench raises this process's RLIMIT_NOFILE soft limit to the hard limit
// (the children inherit it). It returns the report and a nil error only
// if every measurement succeeded; on error nothing started is left
// running. Bench is safe to call from several goroutines, but the
// figures of concurrent runs disturb each other.
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
	r := &Report{
		Command:        strings.Join(os.Args, " "),
		Machine:        machineInfo(o.Binary),
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

	tgt, err := startTarget()
	if err != nil {
		return nil, fmt.Errorf("bench: start the target server: %w", err)
	}
	defer tgt.close()

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
	b := &bencher{r: r, direct: tgt.addr(), braid: tun.listen["-L"], rounds: map[string]*[2][]float64{}}
	for range r.ParallelConns {
		b.bufs = append(b.bufs, make([]byte, copyBufSize))
	}
	for round := 1; round <= o.Rounds; round++ {
		fmt.Fprintf(progress, "round %d of %d\n", round, o.Rounds)
		if err := b.round(ctx, progress); err != nil {
			return nil, fmt.Errorf("bench: round %d: %w", round, err)
		}
		if err := b.rssRound(ctx, progress, o.Binary, home, token, lspec); err != nil {
			return nil, fmt.Errorf("bench: round %d: %w", round, err)
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

// commandLine renders a child's command line for people.
func commandLine(binary string, args []string) string {
	return "BRAID_TOKEN=… " + binary + " " + strings.Join(args, " ")
}

// bencher holds one Bench run's state. Not safe for concurrent use.
type bencher struct {
	r             *Report
	direct, braid string   // addresses: the target, the -L listener
	bufs          [][]byte // one read buffer per parallel download
	rounds        map[string]*[2][]float64
	warnings      []string
}

// add records one round's figure for key; side 0 is direct, 1 braid.
func (b *bencher) add(key string, side int, v float64) {
	p := b.rounds[key]
	if p == nil {
		p = new([2][]float64)
		b.rounds[key] = p
	}
	p[side] = append(p[side], v)
}

// stepTimeout bounds one measurement moving n bytes.
func stepTimeout(n int64) time.Duration {
	return time.Minute + time.Duration(n/(4<<20))*time.Second
}

// both runs f against the direct address, then the tunnel, each under its
// own deadline, and returns the two results.
func both[T any](ctx context.Context, b *bencher, timeout time.Duration, f func(ctx context.Context, addr string) (T, error)) (d, t T, err error) {
	for side, addr := range []string{b.direct, b.braid} {
		sctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("timed out after %v", timeout))
		v, err := f(sctx, addr)
		cancel()
		if err != nil {
			return d, t, fmt.Errorf("%s: %w", [2]string{"direct", "through braid"}[side], err)
		}
		if side == 0 {
			d = v
		} else {
			t = v
		}
	}
	return d, t, nil
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }
func micros(d time.Duration) float64         { return float64(d) / float64(time.Microsecond) }

// round runs every direct/braid measurement once.
func (b *bencher) round(ctx context.Context, progress io.Writer) error {
	r := b.r
	line := func(what string, d, t float64, unit string) {
		fmt.Fprintf(progress, "  %-34s direct %9.1f %-6s braid %9.1f %s\n", what, d, unit, t, unit)
	}

	d, t, err := both(ctx, b, stepTimeout(r.Bytes), func(ctx context.Context, addr string) (time.Duration, error) {
		return download(ctx, addr, r.Bytes, b.bufs[0])
	})
	if err != nil {
		return fmt.Errorf("1-connection download: %w", err)
	}
	b.add(kDownload1, 0, mibps(r.Bytes, d))
	b.add(kDownload1, 1, mibps(r.Bytes, t))
	line("download, 1 connection", mibps(r.Bytes, d), mibps(r.Bytes, t), "MiB/s")

	total := r.ParallelBytes * int64(r.ParallelConns)
	d, t, err = both(ctx, b, stepTimeout(total), func(ctx context.Context, addr string) (time.Duration, error) {
		return parallelDownload(ctx, addr, r.ParallelBytes, b.bufs[:r.ParallelConns])
	})
	if err != nil {
		return fmt.Errorf("parallel download: %w", err)
	}
	b.add(kDownloadN, 0, mibps(total, d))
	b.add(kDownloadN, 1, mibps(total, t))
	line(fmt.Sprintf("download, %d connections", r.ParallelConns), mibps(total, d), mibps(total, t), "MiB/s")

	echoTimeout := time.Minute + time.Duration(r.EchoRoundTrips)*10*time.Millisecond
	ld, lt, err := both(ctx, b, echoTimeout, func(ctx context.Context, addr string) (latency, error) {
		return echoLatency(ctx, addr, r.EchoWarmup, r.EchoRoundTrips)
	})
	if err != nil {
		return fmt.Errorf("echo latency: %w", err)
	}
	b.add(kEchoP50, 0, micros(ld.p50))
	b.add(kEchoP50, 1, micros(lt.p50))
	b.add(kEchoP99, 0, micros(ld.p99))
	b.add(kEchoP99, 1, micros(lt.p99))
	line("echo p50", micros(ld.p50), micros(lt.p50), "µs")
	line("echo p99", micros(ld.p99), micros(lt.p99), "µs")

	type loaded struct {
		lat  latency
		rate float64
	}
	lld, llt, err := both(ctx, b, echoTimeout, func(ctx context.Context, addr string) (loaded, error) {
		lat, rate, err := loadedLatency(ctx, addr, r.EchoWarmup, r.EchoRoundTrips, b.bufs[0])
		return loaded{lat, rate}, err
	})
	if err != nil {
		return fmt.Errorf("echo latency during a download: %w", err)
	}
	b.add(kLoadedP50, 0, micros(lld.lat.p50))
	b.add(kLoadedP50, 1, micros(llt.lat.p50))
	b.add(kLoadedP99, 0, micros(lld.lat.p99))
	b.add(kLoadedP99, 1, micros(llt.lat.p99))
	line("echo p50 during a download", micros(lld.lat.p50), micros(llt.lat.p50), "µs")
	line("echo p99 during a download", micros(lld.lat.p99), micros(llt.lat.p99), "µs")
	line("  (the download meanwhile)", lld.rate/(1<<20), llt.rate/(1<<20), "MiB/s")

	cd, ct, err := both(ctx, b, r.ConnRateTime+time.Minute, func(ctx context.Context, addr string) (float64, error) {
		return connRate(ctx, addr, r.ConnRateMax, r.ConnRateTime)
	})
	if err != nil {
		return fmt.Errorf("connection rate: %w", err)
	}
	b.add(kConnRate, 0, cd)
	b.add(kConnRate, 1, ct)
	line("connect + echo + close", cd, ct, "conn/s")
	return nil
}

// rssRound starts a fresh server and client, reads their RSS, opens
// r.IdleConns idle connections through them, reads it again, and stops
// them.
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
	}()
	rss := func(key string, c *child) (float64, error) {
		v, err := readRSS(c.pid())
		if err != nil {
			return 0, fmt.Errorf("RSS of braid %s: %w", c.name, err)
		}
		f := float64(v) / (1 << 20)
		b.add(key, 1, f)
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
	fmt.Fprintf(progress, "  %-34s client %7.1f MiB  server %7.1f MiB\n", "RSS, no connections", bc, bs)
	fmt.Fprintf(progress, "  %-34s client %7.1f MiB  server %7.1f MiB\n", fmt.Sprintf("RSS, %d idle connections", len(conns)), ic, is)
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
		if p := b.rounds[s.key]; p != nil {
			m.BraidRounds = p[1]
			m.Braid = median(p[1])
			if s.direct {
				m.DirectRounds = p[0]
				m.Direct = median(p[0])
				if m.Direct > 0 {
					m.Ratio = m.Braid / m.Direct
				}
			}
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
	fmt.Fprintf(w, "sizes:    1 × %s; %d × %s at once; %d echo round trips (after %d warm-up); up to %d new connections or %v; %d idle connections\n",
		mib(r.Bytes), r.ParallelConns, mib(r.ParallelBytes), r.EchoRoundTrips, r.EchoWarmup, r.ConnRateMax, r.ConnRateTime, r.IdleConns)
	fmt.Fprintf(w, "rounds:   %d, direct and braid alternately; medians below\n\n", r.Rounds)
}

func orUnknown(s string) string {
	if s == "" {
		return "CPU model unknown"
	}
	return s
}

// WriteTable writes the report as a table: metric | direct | braid |
// ratio | goal, followed by any warnings.
func (r *Report) WriteTable(w io.Writer) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmetric\tdirect\tbraid\tratio\tgoal")
	fmt.Fprintln(tw, "------\t------\t-----\t-----\t----")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Name, direct, formatValue(m.Braid, m.Unit), ratio, goal)
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
	_, err := fmt.Fprintf(w, "(medians of %d round(s); %.1f s in all; ratio = braid / direct)\n", r.Rounds, r.Elapsed.Seconds())
	return err
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
