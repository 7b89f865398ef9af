package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/braidmux/braid/interop_test
cpu: Test CPU
BenchmarkBulk1/tcp-2         	   17331	     41810 ns/op	3000.00 MB/s	      15 B/op	       0 allocs/op
BenchmarkBulk1/braid-2       	   10000	     31003 ns/op	4500.00 MB/s	      50 B/op	       0 allocs/op
BenchmarkBulk1/yamux-2       	   10000	     55720 ns/op	1500.00 MB/s	     269 B/op	       2 allocs/op
BenchmarkEchoRTT/tcp-2       	   84399	      4108 ns/op	      4000 p50-ns	      5000 p99-ns	       0 B/op	       0 allocs/op
BenchmarkEchoRTT/braid-2     	   47371	      7617 ns/op	      6000 p50-ns	     20000 p99-ns	       0 B/op	       0 allocs/op
BenchmarkEchoRTT/braid-2     	   47371	      7617 ns/op	      8000 p50-ns	     30000 p99-ns	       0 B/op	       0 allocs/op
BenchmarkEchoRTT/braid-2     	   47371	      7617 ns/op	      7000 p50-ns	     10000 p99-ns	       0 B/op	       0 allocs/op
BenchmarkOpen/braid-2        	   1000	      2500 ns/op
BenchmarkOpen/tcp-2          	   1000	      50000 ns/op
PASS
ok  	github.com/braidmux/braid/interop_test	4.705s
`

func TestRender(t *testing.T) {
	got, err := render(strings.NewReader(sample), "tcp", false)
	if err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | metric | tcp | braid (÷ tcp) | yamux (÷ tcp) |
|---|---|---:|---:|---:|
| Bulk1 | MB/s | 3000 | 4500 (1.50×) | 1500 (0.50×) |
| EchoRTT | p50 µs | 4.00 | 7.00 (1.75×) | – |
| EchoRTT | p99 µs | 5.00 | 20.0 (4.00×) | – |
| Open | µs/op | 50.0 | 2.50 (0.05×) | – |

goos: linux; goarch: amd64; cpu: Test CPU
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderAll(t *testing.T) {
	got, err := render(strings.NewReader(sample), "braid", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| benchmark | metric | braid | tcp (÷ braid) | yamux (÷ braid) |",
		"| Bulk1 | allocs/op | 0.00 | 0.00 | 2.00 |", // no ratio against a zero
		"| Bulk1 | B/op | 50.0 | 15.0 (0.30×) | 269 (5.38×) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestRenderHyphenatedSub checks that a sub-benchmark name containing a
// hyphen (go-yamux) keeps it, and only the GOMAXPROCS suffix is dropped.
func TestRenderHyphenatedSub(t *testing.T) {
	in := `BenchmarkBulk64/tcp-2        100   1000 ns/op   4000.00 MB/s
BenchmarkBulk64/go-yamux-2   100   2000 ns/op   2000.00 MB/s
BenchmarkBulk64/go-yamux     100   2000 ns/op   3000.00 MB/s
`
	got, err := render(strings.NewReader(in), "tcp", false)
	if err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | metric | tcp | go-yamux (÷ tcp) |
|---|---|---:|---:|
| Bulk64 | MB/s | 4000 | 2500 (0.62×) |
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderNoResults(t *testing.T) {
	if _, err := render(strings.NewReader("PASS\nok x 1s\n"), "tcp", false); err == nil {
		t.Error("no error for input without results")
	}
}

// TestRenderOwnTable checks that a benchmark without the reference
// sub-benchmark (ConnCeiling: raw TCP only) gets a table of its own,
// with ratios to its first sub-benchmark, and leaves the main table's
// columns alone.
func TestRenderOwnTable(t *testing.T) {
	in := `BenchmarkBulk64/tcp-2                       100   1000 ns/op   4000.00 MB/s
BenchmarkBulk64/braid-2                     100   2000 ns/op   3000.00 MB/s
BenchmarkConnCeiling/64conns-128KiB-2       100   1000 ns/op   5000.00 MB/s
BenchmarkConnCeiling/1conn-512KiB-2         100   1000 ns/op   4000.00 MB/s
cpu: Test CPU
`
	got, err := render(strings.NewReader(in), "tcp", false)
	if err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | metric | tcp | braid (÷ tcp) |
|---|---|---:|---:|
| Bulk64 | MB/s | 4000 | 3000 (0.75×) |

| benchmark | metric | 64conns-128KiB | 1conn-512KiB (÷ 64conns-128KiB) |
|---|---|---:|---:|
| ConnCeiling | MB/s | 5000 | 4000 (0.80×) |

cpu: Test CPU
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
