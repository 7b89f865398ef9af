package status

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/braidmux/braid/internal/tunnel"
)

// Defaults used when the writer is not a terminal (or its size is unknown).
const (
	defaultWidth  = 80
	defaultHeight = 24
)

// IsTerminal reports whether f is a terminal, for deciding what
// --status auto means: draw only when stderr is a terminal.
func IsTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}

// Status draws the status block to one writer and serializes log output
// with it. Run and writes through the writers returned by Writer may run
// concurrently; Run must not be called again before a previous Run has
// returned.
type Status struct {
	w       io.Writer
	snap    func() tunnel.Snapshot
	enabled bool

	// Guarded by mu: what is on the screen.
	mu       sync.Mutex
	lines    []string // the block to show; nil when Run is not drawing
	onScreen int      // lines of the block now on screen, cursor just below them
	midLine  bool     // the last log write did not end a line; implies onScreen == 0
}

// New returns a Status drawing to w (normally os.Stderr) from the
// snapshots snap returns; Run calls snap once per redraw, from its own
// goroutine. If enabled is false, nothing is ever drawn: Run returns at
// once and Writer returns its argument.
func New(w io.Writer, snap func() tunnel.Snapshot, enabled bool) *Status {
	return &Status{w: w, snap: snap, enabled: enabled}
}

// Run draws the block at once, redraws it every interval (1s if every
// <= 0) with rates measured over the interval, and when ctx is done
// erases it and returns. It runs in the caller's goroutine and starts no
// other. When the Status is disabled it returns at once.
func (s *Status) Run(ctx context.Context, every time.Duration) {
	if !s.enabled {
		return
	}
	if every <= 0 {
		every = time.Second
	}
	prev, last := s.snap(), time.Now()
	s.draw(s.fit(func(width int) []string { return Render(prev, prev, 0, width) }))

	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.erase()
			return
		case <-t.C:
			cur, now := s.snap(), time.Now()
			elapsed := now.Sub(last)
			s.draw(s.fit(func(width int) []string { return Render(prev, cur, elapsed, width) }))
			prev, last = cur, now
		}
	}
}

// Writer wraps inner, the destination of log output that shares the
// screen with the block (normally os.Stderr, the same file as the
// Status's writer), so that each write first erases the block, then goes
// to inner, then has the block redrawn below it. A write that does not
// end with a newline leaves the block undrawn until a later write ends
// the line. Writes are serialized with each other and with Run's
// redraws; the returned writer is safe for concurrent use. When the
// Status is disabled, Writer returns inner itself.
func (s *Status) Writer(inner io.Writer) io.Writer {
	if !s.enabled {
		return inner
	}
	return &logWriter{s: s, inner: inner}
}

type logWriter struct {
	s     *Status
	inner io.Writer
}

// Write implements io.Writer; drawing errors are ignored (the block is
// cosmetic), errors from the inner writer are returned.
func (lw *logWriter) Write(p []byte) (int, error) {
	s := lw.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	n, err := lw.inner.Write(p)
	if len(p) > 0 {
		s.midLine = p[len(p)-1] != '\n'
	}
	s.drawLocked()
	return n, err
}

// fit renders for the current terminal size: one column narrower than
// the terminal, since a line filling the last column makes some
// terminals wrap, and at most one line less than its height, since the
// cursor cannot move up past the top of the screen.
func (s *Status) fit(render func(width int) []string) []string {
	width, height := defaultWidth, defaultHeight
	if f, ok := s.w.(*os.File); ok && IsTerminal(f) {
		if w, h, err := term.GetSize(int(f.Fd())); err == nil && w > 0 && h > 0 {
			width, height = w, h
		}
	}
	width--
	lines := render(width)
	if max := max(height-1, 2); len(lines) > max {
		more := len(lines) - (max - 1)
		lines = append(lines[:max-1:max-1], truncate(fmt.Sprintf("  … and %d more forwards", more), width))
	}
	return lines
}

func (s *Status) draw(lines []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = lines
	s.drawLocked()
}

func (s *Status) erase() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eraseLocked()
	s.lines = nil
}

// drawLocked draws s.lines over the block on screen, unless the cursor
// is in the middle of a log line.
func (s *Status) drawLocked() {
	if s.midLine || s.lines == nil {
		return
	}
	var b bytes.Buffer
	if s.onScreen > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", s.onScreen)
	}
	for _, l := range s.lines {
		b.WriteString("\x1b[2K")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if len(s.lines) < s.onScreen {
		b.WriteString("\x1b[J") // clear what is left of a longer block
	}
	s.w.Write(b.Bytes())
	s.onScreen = len(s.lines)
}

// eraseLocked clears the block from the screen, leaving the cursor where
// its first line was.
func (s *Status) eraseLocked() {
	if s.onScreen == 0 {
		return
	}
	fmt.Fprintf(s.w, "\r\x1b[%dA\x1b[J", s.onScreen)
	s.onScreen = 0
}

// Render returns the status block for cur: a header line with the link
// state, RTT, reconnects and (if any) authentication failures, then one
// line per forward with its name, open connections and up/down rates.
// Rates are the byte counts' growth from prev to cur divided by elapsed
// (shown as "-" if elapsed <= 0); forwards are matched by name and kind,
// and a forward missing from prev, or whose counter went down, counts
// from zero. Every line is at most width terminal columns (no limit if
// width <= 0; East Asian wide runes count as two): forward names are
// shortened first, marked with "…", then whole lines. Control and
// invisible format characters in names are shown as '?'. Render does not
// look at the clock or the terminal.
func Render(prev, cur tunnel.Snapshot, elapsed time.Duration, width int) []string {
	lines := make([]string, 0, 1+len(cur.Forwards))
	lines = append(lines, truncate(header(cur), width))

	type key struct {
		name, kind string
		nth        int // for forwards sharing name and kind
	}
	before := make(map[key]tunnel.ForwardStats, len(prev.Forwards))
	seen := make(map[key]int, len(prev.Forwards))
	for _, f := range prev.Forwards {
		k := key{f.Name, f.Kind, 0}
		k.nth = seen[k]
		seen[k]++
		before[k] = f
	}
	clear(seen)

	type row struct{ name, stats string }
	rows := make([]row, 0, len(cur.Forwards))
	nameW := 0
	// The usual width of the stats (without "failed"), kept visible
	// when names are shortened.
	statsW := len("open 999  up 999.9 kB/s  down 999.9 kB/s")
	for _, f := range cur.Forwards {
		k := key{f.Name, f.Kind, 0}
		k.nth = seen[k]
		seen[k]++
		p := before[k] // zero if new: count from 0
		stats := fmt.Sprintf("open %3d  up %10s  down %10s",
			f.Open, rate(p.BytesUp, f.BytesUp, elapsed), rate(p.BytesDown, f.BytesDown, elapsed))
		if f.Failed > 0 {
			stats += fmt.Sprintf("  failed %d", f.Failed)
		}
		r := row{name: printable(f.Name), stats: stats}
		nameW = max(nameW, columns(r.name))
		rows = append(rows, r)
	}
	const indent, gap = "  ", "  "
	if width > 0 {
		// Shorten names so the rates fit, keeping at least a few runes.
		nameW = min(nameW, max(width-len(indent)-len(gap)-statsW, 8))
	}
	for _, r := range rows {
		name := truncate(r.name, nameW)
		pad := strings.Repeat(" ", nameW-columns(name))
		lines = append(lines, truncate(indent+name+pad+gap+r.stats, width))
	}
	return lines
}

func header(s tunnel.Snapshot) string {
	var b strings.Builder
	b.WriteString("braid")
	if s.Role != "" {
		b.WriteString(" " + printable(s.Role))
	}
	b.WriteString(":")
	field := func(format string, args ...any) {
		b.WriteString("  ")
		fmt.Fprintf(&b, format, args...)
	}
	if s.Role == "server" {
		if s.Connected {
			field("listening")
		} else {
			field("not listening")
		}
		field("clients %d", s.Sessions)
		if s.Unauthenticated > 0 {
			field("authenticating %d", s.Unauthenticated)
		}
		field("sessions accepted %d", s.Reconnects)
		if s.RTT > 0 {
			field("max rtt %s", roundRTT(s.RTT))
		}
	} else {
		if s.Connected {
			field("connected")
			if s.RTT > 0 {
				field("rtt %s", roundRTT(s.RTT))
			}
		} else {
			field("reconnecting")
		}
		field("reconnects %d", s.Reconnects)
	}
	if s.AuthFailures > 0 {
		field("auth failures %d", s.AuthFailures)
	}
	return b.String()
}

// rate formats (cur-prev)/elapsed as a byte rate in SI units, e.g.
// "12.3 MB/s". A counter that went down restarted, so counts from 0.
func rate(prev, cur uint64, elapsed time.Duration) string {
	if elapsed <= 0 {
		return "-"
	}
	delta := cur - prev
	if cur < prev {
		delta = cur
	}
	v := float64(delta) / elapsed.Seconds()
	if v < 999.5 {
		return fmt.Sprintf("%.0f B/s", v)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB"}
	v /= 1000
	i := 0
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s/s", v, units[i])
}

func roundRTT(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d < 100*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	default:
		return d.Round(time.Millisecond)
	}
}

// printable replaces invalid UTF-8, control characters (which would
// move the cursor or inject escapes) and invisible format characters
// (bidi overrides, zero-width spaces) with '?'.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "?")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return '?'
		}
		return r
	}, s)
}

// truncate shortens s to at most width columns, ending it with "…" if cut.
func truncate(s string, width int) string {
	if width <= 0 || columns(s) <= width {
		return s
	}
	var b strings.Builder
	w := 0
	for _, r := range s {
		rw := runeColumns(r)
		if w+rw > width-1 {
			break
		}
		b.WriteRune(r)
		w += rw
	}
	b.WriteString("…")
	return b.String()
}

// columns is the number of terminal columns s takes, erring on the wide
// side: see runeColumns.
func columns(s string) int {
	n := 0
	for _, r := range s {
		n += runeColumns(r)
	}
	return n
}

// runeColumns is 2 for East Asian wide and fullwidth runes and common
// emoji, else 1 (combining marks included, which overestimates: a line
// may come out shorter than it could be, never longer).
func runeColumns(r rune) int {
	switch {
	case r < 0x1100:
		return 1
	case r <= 0x115F, // Hangul Jamo
		0x2E80 <= r && r <= 0xA4CF && r != 0x303F, // CJK ... Yi
		0xAC00 <= r && r <= 0xD7A3,                // Hangul syllables
		0xF900 <= r && r <= 0xFAFF,                // CJK compatibility ideographs
		0xFE30 <= r && r <= 0xFE4F,                // CJK compatibility forms
		0xFF00 <= r && r <= 0xFF60,                // fullwidth forms
		0xFFE0 <= r && r <= 0xFFE6,
		0x1F300 <= r && r <= 0x1F64F, // emoji
		0x1F900 <= r && r <= 0x1F9FF,
		0x20000 <= r && r <= 0x3FFFD: // CJK extensions
		return 2
	}
	return 1
}
