// Soak runs mixed traffic between a braid client and server session over
// an emulated loopback link (internal/linkemu) for a fixed time, checking
// every byte, and reports whether anything was corrupted or leaked.
//
//	go run ./internal/soak -duration 10m -faults -compression
//
// Each session carries, at most -streams at a time, many short streams
// (open, echo a few KiB, close) and some bulk ones (8 MiB up, answered
// with their SHA-256, or 8 MiB down), a few of them reset on purpose by
// either side, and checks the SHA-256 of every stream that completes.
// Sessions are replaced every -session; with -compression they alternate
// between zstd and no compression. With -faults the link stalls now and
// then and delivers bytes in writes of random sizes, neither of which may
// end a session; -cuts also cuts the connection at a random byte, after
// which the next session starts.
//
// With -resume, sessions are resumable (session.Dial and a
// session.Listener) over loopback TCP through a relay
// (internal/cutrelay) that cuts the connection every 0.2-3 s. The
// sessions must resume every time: no stream may fail, and each session's
// Stats().Resumes is checked against the cuts. The link flags (-rtt,
// -rate, -faults, -cuts) do not apply then.
//
// A line every minute and a report at the end give: streams completed,
// bytes verified, corruptions (must be 0), resets seen, unexpected errors,
// peak heap and the heap's peak in the first and last minute, and the
// number of goroutines at the start and at the end (after closing
// everything, waiting up to 5 s for them to return).
//
// Every stream has a deadline (-deadline) on both sides, as a careful
// application would set. A stream's deadline timer keeps the stream, and
// its session, in memory until it fires, even after both are closed, so
// the heap holds up to a -deadline's worth of finished streams; a short
// -deadline shows the heap without them.
//
// The exit status is 1 if a stream's bytes were corrupted, a stream
// failed in a way nothing explains (not a reset asked for, not a cut), or
// goroutines did not return to the starting count; 2 for bad flags.
//
// Everything runs on loopback and stops at the deadline (or on an
// interrupt). The load is moderate by default: a 2 ms link limited to
// 40 MB/s and at most 16 streams at a time, so it can run beside other
// work.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/braidmux/braid/internal/linkemu"
	"github.com/braidmux/braid/session"
)

type options struct {
	duration    time.Duration
	faults      bool
	cuts        bool
	resume      bool
	compression bool
	streams     int
	bulk        int64
	sessionLife time.Duration
	rtt         time.Duration
	rate        int64
	seed        uint64
	memprofile  string
	deadline    time.Duration
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to run")
	flag.BoolVar(&o.faults, "faults", false, "inject faults that must not end a session: stalls, and writes of random sizes")
	flag.BoolVar(&o.cuts, "cuts", false, "also cut each session's connection at a random byte (2-40 MB in); a new session follows")
	flag.BoolVar(&o.resume, "resume", false, "resumable sessions over loopback TCP, their connection cut every 0.2-3 s; every cut must be resumed (the link flags do not apply)")
	flag.BoolVar(&o.compression, "compression", false, "alternate sessions between zstd compression and none (default: none)")
	flag.IntVar(&o.streams, "streams", 16, "streams in flight at once, at most")
	flag.Int64Var(&o.bulk, "bulk", 8<<20, "bytes of each bulk stream")
	flag.DurationVar(&o.sessionLife, "session", 30*time.Second, "how long a session lives before the next one replaces it")
	flag.DurationVar(&o.rtt, "rtt", 2*time.Millisecond, "round-trip time of the emulated link")
	flag.Int64Var(&o.rate, "rate", 40_000_000, "bandwidth of the emulated link, bytes per second each way (0: unlimited)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed for the traffic mix and the faults")
	flag.DurationVar(&o.deadline, "deadline", 2*time.Minute, "deadline set on every stream on both sides; a stream that meets it is an unexpected error (a hang)")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile to this file at the end, after closing everything")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: go run ./internal/soak [flags]\n\n"+
			"Runs braid sessions with mixed, SHA-256-checked traffic over an emulated\n"+
			"loopback link; exits 1 on corruption, unexplained errors or leaked goroutines.\n\nflags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || o.duration <= 0 || o.streams < 1 || o.bulk < 1 || o.sessionLife <= 0 || o.rtt < 0 || o.rate < 0 || o.deadline <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()

	startG := runtime.NumGoroutine()
	start := time.Now()
	var c counters
	mem := newMemWatch(start)
	var monitor sync.WaitGroup
	monitor.Add(1)
	go func() {
		defer monitor.Done()
		mem.run(ctx, &c)
	}()

	if o.resume {
		fmt.Printf("soak: %v, resumable sessions cut every 0.2-3 s, compression %v, %d streams at a time, bulk %d bytes, sessions of %v, loopback TCP, seed %d\n",
			o.duration, o.compression, o.streams, o.bulk, o.sessionLife, o.seed)
	} else {
		fmt.Printf("soak: %v, faults %v, cuts %v, compression %v, %d streams at a time, bulk %d bytes, sessions of %v, link RTT %v at %d B/s, seed %d\n",
			o.duration, o.faults, o.cuts, o.compression, o.streams, o.bulk, o.sessionLife, o.rtt, o.rate, o.seed)
	}
	for i := 0; ctx.Err() == nil; i++ {
		if err := runSession(ctx, o, i, &c); err != nil {
			c.unexpected(fmt.Sprintf("session %d: %v", i, err))
		}
	}
	monitor.Wait()
	mem.sample(time.Now())

	// Everything is closed: the goroutines of the sessions, links and
	// streams must be gone.
	endG := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); endG > startG && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		endG = runtime.NumGoroutine()
	}

	elapsed := time.Since(start).Round(time.Second)
	fmt.Printf("\nsoak report after %v\n", elapsed)
	fmt.Print(c.report(mem))
	fmt.Printf("goroutines:         %d at start, %d at end\n", startG, endG)
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			fmt.Println("soak:", err)
		}
	}
	failed := false
	if n := c.corruptions.Load(); n > 0 {
		fmt.Printf("FAIL: %d corrupted streams\n", n)
		failed = true
	}
	if n := c.errors.Load(); n > 0 {
		fmt.Printf("FAIL: %d unexpected errors\n", n)
		failed = true
	}
	if endG > startG {
		fmt.Printf("FAIL: %d goroutines did not return:\n", endG-startG)
		pprof.Lookup("goroutine").WriteTo(os.Stdout, 1)
		failed = true
	}
	if failed {
		return 1
	}
	fmt.Println("PASS")
	return 0
}

// runSession runs session number i until its lifetime ends, the overall
// deadline passes or (with -cuts) its connection is cut, then closes
// everything it started.
func runSession(ctx context.Context, o options, i int, c *counters) error {
	rng := rand.New(rand.NewPCG(o.seed, uint64(i)))
	lcfg := linkemu.Config{RTT: o.rtt, Rate: o.rate, Seed: o.seed ^ uint64(i)<<32}
	if o.faults {
		rc := randomRechunk(rng)
		lcfg.Faults = append(lcfg.Faults, randomStall(rng), rc)
		if rc.MaxWrite < 1000 {
			// Tiny writes cost a system call each: keep their rate low.
			lcfg.Rate = min(lcfg.Rate, tinyWriteRate)
			if lcfg.Rate == 0 {
				lcfg.Rate = tinyWriteRate
			}
		}
	}
	if o.cuts {
		lcfg.Faults = append(lcfg.Faults, linkemu.Fault{
			Kind: linkemu.Cut,
			Dir:  linkemu.Dir(1 + rng.IntN(2)),
			At:   2_000_000 + rng.Int64N(38_000_000),
		})
	}
	cfg := session.DefaultConfig()
	cfg.HandshakeTimeout = 10 * time.Second
	if o.compression && i%2 == 0 {
		cfg.Compression = session.CompressionZstd
	}
	var cli, srv *session.Session
	var resumed func() error // with -resume: checks the resumes against the cuts
	if o.resume {
		fmt.Printf("session %d: compression %v, resumable, loopback TCP cut every 0.2-3 s\n", i, cfg.Compression)
		rs, err := startResumable(ctx, cfg, rng, o.sessionLife)
		if err != nil {
			return err
		}
		defer rs.close()
		cli, srv, resumed = rs.cli, rs.srv, rs.check
	} else {
		fmt.Printf("session %d: compression %v, link %v at %d B/s%s\n", i, cfg.Compression, o.rtt, lcfg.Rate, describeFaults(lcfg.Faults))
		cc, sc, link, err := linkemu.PipeLink(lcfg)
		if err != nil {
			return err
		}
		defer link.Close()
		srvCh := make(chan *session.Session, 1)
		go func() {
			s, err := session.Server(sc, cfg)
			if err != nil {
				c.unexpected(fmt.Sprintf("server handshake: %v", err))
			}
			srvCh <- s
		}()
		cli, err = session.Client(cc, cfg)
		srv = <-srvCh
		if err != nil || srv == nil {
			if cli != nil {
				cli.Close()
			}
			if srv != nil {
				srv.Close()
			}
			return fmt.Errorf("handshake: %v", err)
		}
	}
	c.sessions.Add(1)
	if cli.Compression() == session.CompressionZstd {
		c.zstdSessions.Add(1)
	}

	var closing closingFlag
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		serve(srv, c, &closing, o.deadline)
	}()

	life, cancel := context.WithTimeout(ctx, o.sessionLife)
	defer cancel()
	bulkSlots := make(chan struct{}, max(1, o.streams/8)) // bulk streams at once
	var workers sync.WaitGroup
	for w := range o.streams {
		workers.Add(1)
		go func() {
			defer workers.Done()
			wrng := rand.New(rand.NewPCG(o.seed^uint64(i), uint64(w)))
			for life.Err() == nil && !cli.IsClosed() {
				clientStream(cli, wrng, o, bulkSlots, c)
			}
		}()
	}
	workers.Wait()
	cut := cli.IsClosed() || srv.IsClosed()
	if cut {
		c.cutSessions.Add(1)
	}
	var resumeErr error
	if resumed != nil {
		resumeErr = resumed() // before Close: a cut may still be resuming
		c.resumes.Add(int64(cli.Stats().Resumes))
	}
	closing.set()
	cli.Close()
	srv.Close()
	wg.Wait()
	if cut && !o.cuts {
		return fmt.Errorf("session ended by itself: client %v, server %v", cli.Err(), srv.Err())
	}
	return resumeErr
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomDir(rng *rand.Rand) linkemu.Dir { return linkemu.Dir(rng.IntN(3)) }

// randomStall pauses a direction for 1-50 ms every 256 KiB to 4 MiB.
func randomStall(rng *rand.Rand) linkemu.Fault {
	return linkemu.Fault{
		Kind:  linkemu.Stall,
		Dir:   randomDir(rng),
		At:    rng.Int64N(1 << 20),
		Every: 256<<10 + rng.Int64N(4<<20-256<<10),
		For:   time.Millisecond + time.Duration(rng.Int64N(int64(49*time.Millisecond))),
	}
}

// tinyWriteRate is the link rate of a session whose link writes a few
// hundred bytes at a time.
const tinyWriteRate = 2_000_000

// randomRechunk delivers a direction in writes of random sizes.
func randomRechunk(rng *rand.Rand) linkemu.Fault {
	sizes := []int{100, 1460, 9000, 65536}
	return linkemu.Fault{Kind: linkemu.Rechunk, Dir: randomDir(rng), MaxWrite: sizes[rng.IntN(len(sizes))]}
}

func describeFaults(fs []linkemu.Fault) string {
	var b strings.Builder
	for _, f := range fs {
		switch f.Kind {
		case linkemu.Stall:
			fmt.Fprintf(&b, ", stall %v for %v at byte %d and every %d", f.Dir, f.For.Round(time.Millisecond), f.At, f.Every)
		case linkemu.Rechunk:
			fmt.Fprintf(&b, ", rechunk %v in writes of 1-%d bytes", f.Dir, f.MaxWrite)
		case linkemu.Cut:
			fmt.Fprintf(&b, ", cut %v at byte %d", f.Dir, f.At)
		}
	}
	return b.String()
}

// closingFlag tells the server that errors from now on are ours.
type closingFlag struct {
	mu sync.Mutex
	on bool
}

func (f *closingFlag) set() { f.mu.Lock(); f.on = true; f.mu.Unlock() }
func (f *closingFlag) get() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on
}

// describe shortens an error for the report.
func describe(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.ReplaceAll(s, "\n", " ")
}
