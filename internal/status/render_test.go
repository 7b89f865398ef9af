package status_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/braidmux/braid/internal/status"
	"github.com/braidmux/braid/internal/tunnel"
)

func fwd(name string, up, down uint64) tunnel.ForwardStats {
	return tunnel.ForwardStats{Name: name, Kind: "local", BytesUp: up, BytesDown: down}
}

func client(connected bool, fs ...tunnel.ForwardStats) tunnel.Snapshot {
	return tunnel.Snapshot{Role: "client", Connected: connected, Reconnects: 2, RTT: 12340 * time.Microsecond, Forwards: fs}
}

func TestRender(t *testing.T) {
	long := "-L 127.0.0.1:8080:a-very-long-database-host-name.internal.example.com:5432"
	tests := []struct {
		name       string
		prev, cur  tunnel.Snapshot
		elapsed    time.Duration
		width      int
		want       []string   // exact lines, if set
		contains   [][]string // per line: substrings it must contain
		notContain []string   // substrings no line may contain
	}{
		{
			name:    "connected client, rates from deltas",
			prev:    client(true, fwd("-L 8080:db:5432", 1000, 0), fwd("-D 1080", 0, 0)),
			cur:     client(true, fwd("-L 8080:db:5432", 1000+12_300_000, 1500), fwd("-D 1080", 0, 512)),
			elapsed: time.Second,
			want: []string{
				"braid client:  connected  rtt 12.3ms  reconnects 2",
				"  -L 8080:db:5432  open   0  up  12.3 MB/s  down   1.5 kB/s",
				"  -D 1080          open   0  up      0 B/s  down    512 B/s",
			},
		},
		{
			name:     "rate divides by elapsed",
			prev:     client(true, fwd("-L 1:h:1", 0, 0)),
			cur:      client(true, fwd("-L 1:h:1", 2000, 5_000_000_000)),
			elapsed:  2 * time.Second,
			contains: [][]string{{"connected"}, {"up   1.0 kB/s", "down   2.5 GB/s"}},
		},
		{
			name:     "first draw: no elapsed time, no rate",
			prev:     client(true, fwd("-L 1:h:1", 5, 5)),
			cur:      client(true, fwd("-L 1:h:1", 5, 5)),
			elapsed:  0,
			contains: [][]string{nil, {"up          -  down          -"}},
		},
		{
			name:     "counter went down (restarted): counts from zero",
			prev:     client(true, fwd("-L 1:h:1", 10_000, 0)),
			cur:      client(true, fwd("-L 1:h:1", 3000, 0)),
			elapsed:  time.Second,
			contains: [][]string{nil, {"up   3.0 kB/s"}},
		},
		{
			name:     "new forward counts from zero; forwards matched by name, not position",
			prev:     client(true, fwd("-L 2:h:2", 1000, 0)),
			cur:      client(true, fwd("-L 1:h:1", 4000, 0), fwd("-L 2:h:2", 1000, 0)),
			elapsed:  time.Second,
			contains: [][]string{nil, {"-L 1:h:1", "up   4.0 kB/s"}, {"-L 2:h:2", "up      0 B/s"}},
		},
		{
			name:     "rounding to the next unit",
			prev:     client(true, fwd("-L 1:h:1", 0, 0)),
			cur:      client(true, fwd("-L 1:h:1", 999_999, 999)),
			elapsed:  time.Second,
			contains: [][]string{nil, {"up   1.0 MB/s", "down    999 B/s"}},
		},
		{
			name:       "disconnected client",
			prev:       client(false),
			cur:        client(false),
			elapsed:    time.Second,
			want:       []string{"braid client:  reconnecting  reconnects 2"},
			notContain: []string{"rtt"},
		},
		{
			name: "server header",
			cur: tunnel.Snapshot{Role: "server", Connected: true, Sessions: 3, Unauthenticated: 1,
				Reconnects: 7, AuthFailures: 2, RTT: 800 * time.Microsecond},
			want: []string{"braid server:  listening  clients 3  authenticating 1  sessions accepted 7  max rtt 800µs  auth failures 2"},
		},
		{
			name:     "open connections and failures",
			cur:      client(true, tunnel.ForwardStats{Name: "-R 9000:localhost:80", Kind: "remote", Open: 42, Failed: 3}),
			contains: [][]string{nil, {"open  42", "failed 3"}},
		},
		{
			name:     "long name shortened, rates kept",
			prev:     client(true, fwd(long, 0, 0), fwd("-D 1080", 0, 0)),
			cur:      client(true, fwd(long, 1_000_000, 0), fwd("-D 1080", 0, 0)),
			elapsed:  time.Second,
			width:    79,
			contains: [][]string{nil, {"-L 127.0.0.1:8080:a-very", "…", "up   1.0 MB/s", "down      0 B/s"}, {"-D 1080", "down      0 B/s"}},
		},
		{
			name:    "wide runes count two columns",
			prev:    client(true),
			cur:     client(true, fwd("-L 1:数据库服务器数据库服务器.example:5432", 0, 0), fwd("-D 1080", 0, 0)),
			elapsed: time.Second,
			width:   60,
			want: []string{
				"braid client:  connected  rtt 12.3ms  reconnects 2",
				"  -L 1:数据库服务…  open   0  up      0 B/s  down      0 B/s",
				"  -D 1080           open   0  up      0 B/s  down      0 B/s",
			},
		},
		{
			name:     "narrow terminal: whole lines cut",
			prev:     client(true, fwd(long, 0, 0)),
			cur:      client(true, fwd(long, 0, 0)),
			elapsed:  time.Second,
			width:    20,
			contains: [][]string{{"braid client:  conn…"}, {"…"}},
		},
		{
			name:       "control characters in names are neutralised",
			cur:        client(true, fwd("-L 1:\x1b[2J\nevil\xff", 0, 0)),
			contains:   [][]string{nil, {"-L 1:?[2J?evil?"}},
			notContain: []string{"\x1b", "\n"},
		},
		{
			name:     "no width limit",
			cur:      client(true, fwd(long, 0, 0)),
			width:    0,
			contains: [][]string{nil, {long}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := status.Render(tc.prev, tc.cur, tc.elapsed, tc.width)
			if len(got) != 1+len(tc.cur.Forwards) {
				t.Fatalf("got %d lines, want %d:\n%s", len(got), 1+len(tc.cur.Forwards), strings.Join(got, "\n"))
			}
			if tc.want != nil && strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i, subs := range tc.contains {
				for _, sub := range subs {
					if !strings.Contains(got[i], sub) {
						t.Errorf("line %d %q lacks %q", i, got[i], sub)
					}
				}
			}
			for i, l := range got {
				for _, sub := range tc.notContain {
					if strings.Contains(l, sub) {
						t.Errorf("line %d %q contains %q", i, l, sub)
					}
				}
				if tc.width > 0 && utf8.RuneCountInString(l) > tc.width {
					t.Errorf("line %d is %d runes, wider than %d: %q", i, utf8.RuneCountInString(l), tc.width, l)
				}
			}
		})
	}
}

// Render is pure: same input, same output, inputs untouched.
func TestRenderPure(t *testing.T) {
	prev := client(true, fwd("-L 1:h:1", 0, 0))
	cur := client(true, fwd("-L 1:h:1", 100, 0))
	a := status.Render(prev, cur, time.Second, 80)
	b := status.Render(prev, cur, time.Second, 80)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatalf("Render not deterministic:\n%q\n%q", a, b)
	}
	if cur.Forwards[0].BytesUp != 100 || prev.Forwards[0].BytesUp != 0 {
		t.Fatal("Render modified its input")
	}
}
