package tunnel

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseForward(t *testing.T) {
	tests := []struct {
		k      Kind
		spec   string
		want   Forward
		listen string
		target string
		err    string
	}{
		{k: Local, spec: "8080:db:5432", want: Forward{BindPort: 8080, TargetHost: "db", TargetPort: 5432}, listen: "127.0.0.1:8080", target: "db:5432"},
		{k: Local, spec: "0.0.0.0:8080:db:5432", want: Forward{BindHost: "0.0.0.0", BindPort: 8080, TargetHost: "db", TargetPort: 5432}, listen: "0.0.0.0:8080"},
		{k: Local, spec: "*:8080:db:5432", want: Forward{BindHost: "*", BindPort: 8080, TargetHost: "db", TargetPort: 5432}, listen: ":8080"},
		{k: Local, spec: "[::1]:8080:[fd00::5]:80", want: Forward{BindHost: "::1", BindPort: 8080, TargetHost: "fd00::5", TargetPort: 80}, listen: "[::1]:8080", target: "[fd00::5]:80"},
		{k: Remote, spec: "0:localhost:3000", want: Forward{BindPort: 0, TargetHost: "localhost", TargetPort: 3000}, listen: "127.0.0.1:0"},
		{k: Dynamic, spec: "1080", want: Forward{BindPort: 1080}, listen: "127.0.0.1:1080"},
		{k: Dynamic, spec: "[::1]:1080", want: Forward{BindHost: "::1", BindPort: 1080}, listen: "[::1]:1080"},
		{k: Local, spec: "8080:db", err: "wrong number of fields"},
		{k: Local, spec: "8080:db:0", err: "target port"},
		{k: Local, spec: "x:db:80", err: "listening port"},
		{k: Local, spec: "70000:db:80", err: "listening port"},
		{k: Local, spec: "8080::80", err: "empty target host"},
		{k: Local, spec: "[::1:8080:db:80", err: "missing ']'"},
		{k: Local, spec: "8080:db:80:", err: "ends with ':'"},
		{k: Dynamic, spec: "a:b:c", err: "wrong number of fields"},
		{k: Local, spec: "", err: "wrong number"},
	}
	for _, tt := range tests {
		got, err := ParseForward(tt.k, tt.spec)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseForward(%v, %q) error %v, want one containing %q", tt.k, tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseForward(%v, %q): %v", tt.k, tt.spec, err)
			continue
		}
		tt.want.Kind, tt.want.Spec = tt.k, tt.spec
		if got != tt.want {
			t.Errorf("ParseForward(%v, %q) = %+v, want %+v", tt.k, tt.spec, got, tt.want)
		}
		if got.ListenAddr() != tt.listen {
			t.Errorf("%q: ListenAddr %q, want %q", tt.spec, got.ListenAddr(), tt.listen)
		}
		if tt.target != "" && got.Target() != tt.target {
			t.Errorf("%q: Target %q, want %q", tt.spec, got.Target(), tt.target)
		}
	}
}

func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"8080:db:5432", "[::1]:0:[fd00::1]:80", "1080", "*:1:a:2", "[:", "::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, k := range []Kind{Local, Remote, Dynamic} {
			fw, err := ParseForward(k, spec)
			if err != nil {
				continue
			}
			if fw.BindPort < 0 || fw.BindPort > 65535 {
				t.Fatalf("%q: port %d", spec, fw.BindPort)
			}
			if k != Dynamic && (fw.TargetHost == "" || fw.TargetPort < 1 || fw.TargetPort > 65535) {
				t.Fatalf("%q: target %q:%d", spec, fw.TargetHost, fw.TargetPort)
			}
		}
	})
}

// FuzzReadMsg feeds arbitrary bytes where a tunnel header is expected:
// no panic, no allocation beyond the limit, and what is accepted
// round-trips.
func FuzzReadMsg(f *testing.F) {
	var seed bytes.Buffer
	writeMsg(&seed, helloMsg{Version: 1, Token: "t", Remote: []remoteReq{{ID: 2, Spec: "0:a:1", Port: 0}}})
	f.Add(seed.Bytes())
	seed.Reset()
	writeMsg(&seed, openMsg{Kind: kindLocal, Addr: "example.com:443"})
	f.Add(seed.Bytes())
	f.Add([]byte{0xff, 0xff, '{'})
	f.Add([]byte{0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var h helloMsg
		r := bytes.NewReader(data)
		if err := readMsg(r, &h); err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeMsg(&buf, h); err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		var h2 helloMsg
		if err := readMsg(&buf, &h2); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		var o openMsg
		_ = readMsg(bytes.NewReader(data), &o)
	})
}

func TestReadMsgLimits(t *testing.T) {
	if err := readMsg(bytes.NewReader([]byte{0xff, 0xff}), &openMsg{}); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("oversized header: %v", err)
	}
	if err := readMsg(bytes.NewReader([]byte{0, 10, '{'}), &openMsg{}); err == nil {
		t.Fatal("truncated header accepted")
	}
	if err := readMsg(bytes.NewReader([]byte{0, 1, 'x'}), &openMsg{}); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Fatalf("garbage header: %v", err)
	}
}
