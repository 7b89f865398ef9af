package trust_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/braidmux/braid/internal/trust"
)

func FuzzParseKnownHosts(f *testing.F) {
	const fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
	f.Add([]byte("# c\n\nhost:1 " + fp + "\n[::1]:22\t" + fp + "\r\n"))
	f.Add([]byte("host:1\n"))
	f.Add([]byte("host:1 sha256:" + fp[7:] + " x"))
	f.Add([]byte(":: " + fp))
	f.Fuzz(func(t *testing.T, data []byte) {
		hosts, err := trust.ParseKnownHosts(data, "kh")
		if err != nil {
			if !strings.Contains(err.Error(), "kh line ") {
				t.Fatalf("error %q does not name file and line", err)
			}
			return
		}
		// Entries written back out parse to the same entries.
		var b strings.Builder
		for _, h := range hosts {
			if got, err := trust.ParseFingerprint(h.Fingerprint); err != nil || got != h.Fingerprint {
				t.Fatalf("entry fingerprint %q not canonical: %v", h.Fingerprint, err)
			}
			fmt.Fprintf(&b, "%s %s\n", h.Addr, h.Fingerprint)
		}
		again, err := trust.ParseKnownHosts([]byte(b.String()), "kh")
		if err != nil || len(again) != len(hosts) {
			t.Fatalf("re-parse: %v, %d vs %d entries", err, len(again), len(hosts))
		}
		for i := range hosts {
			if again[i].Addr != hosts[i].Addr || again[i].Fingerprint != hosts[i].Fingerprint {
				t.Fatalf("re-parse: %v vs %v", again[i], hosts[i])
			}
		}
	})
}
