package tunbench

import (
	"bytes"
	"log/slog"
	"maps"
	"testing"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{`time=2026-01-02T03:04:05.000Z level=INFO msg="server listening" addr=127.0.0.1:41234 fingerprint=SHA256:ab+/c=`,
			map[string]string{"time": "2026-01-02T03:04:05.000Z", "level": "INFO", "msg": "server listening", "addr": "127.0.0.1:41234", "fingerprint": "SHA256:ab+/c="}},
		{`level=INFO msg="forward ready" forward="-L 0:127.0.0.1:8080" listen=127.0.0.1:39999`,
			map[string]string{"level": "INFO", "msg": "forward ready", "forward": "-L 0:127.0.0.1:8080", "listen": "127.0.0.1:39999"}},
		{`level=ERROR msg="say \"hi\"\tnow" x=`, map[string]string{"level": "ERROR", "msg": "say \"hi\"\tnow", "x": ""}},
		{`panic: something broke`, map[string]string{}},
		{`a=1 word b=2`, map[string]string{"a": "1", "b": "2"}},
		{`a="unterminated b=2`, map[string]string{}},
		{`=x a=1`, map[string]string{}},
		{``, map[string]string{}},
	}
	for _, tc := range tests {
		if got := parseLogLine(tc.line); !maps.Equal(got, tc.want) {
			t.Errorf("parseLogLine(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

// FuzzParseLogLine checks that any line parses without panicking and that
// what slog's text handler writes parses back to the same message and
// value.
func FuzzParseLogLine(f *testing.F) {
	f.Add("server listening", "127.0.0.1:1")
	f.Add("forward ready", "-L 0:[::1]:80")
	f.Add(`quote " and \ back`, "")
	f.Add("tab\tand\nnewline", "\xff\xfe")
	f.Fuzz(func(t *testing.T, msg, val string) {
		parseLogLine(msg)
		parseLogLine(val)
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info(msg, "k", val)
		line := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		kv := parseLogLine(string(line))
		if kv["msg"] != msg || kv["k"] != val || kv["level"] != "INFO" {
			t.Errorf("line %q parsed as %q; want msg=%q k=%q", line, kv, msg, val)
		}
	})
}
