package status_test

import (
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/braidmux/braid/internal/status"
	"github.com/braidmux/braid/internal/tunnel"
)

// Forward names come from the command line, config files and (on a
// server) remote clients' announcements: whatever they hold, Render must
// keep lines within the width and free of control characters.
func FuzzRender(f *testing.F) {
	f.Add("-L 8080:db:5432", "client", 80, uint64(1), uint64(2))
	f.Add("-R 9000:localhost:80 (al\"ice\")", "server", 20, uint64(1<<63), uint64(0))
	f.Add("\x1b[2J\r\n\xff\u200b界", "", 1, uint64(0), ^uint64(0))
	f.Fuzz(func(t *testing.T, name, role string, width int, up, down uint64) {
		width %= 500
		prev := tunnel.Snapshot{Role: role, Forwards: []tunnel.ForwardStats{{Name: name, BytesUp: down}}}
		cur := tunnel.Snapshot{Role: role, Connected: true, RTT: time.Duration(up),
			Forwards: []tunnel.ForwardStats{{Name: name, BytesUp: up, BytesDown: down}, {Name: name}}}
		lines := status.Render(prev, cur, time.Duration(down%1e10), width)
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3", len(lines))
		}
		for _, l := range lines {
			if !utf8.ValidString(l) {
				t.Fatalf("invalid UTF-8: %q", l)
			}
			if width > 0 && utf8.RuneCountInString(l) > width {
				t.Fatalf("line wider than %d: %q", width, l)
			}
			if strings.IndexFunc(l, unicode.IsControl) >= 0 {
				t.Fatalf("control character in %q", l)
			}
		}
	})
}
