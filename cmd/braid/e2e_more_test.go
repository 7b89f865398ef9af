package main_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// 12. mTLS: --tls-client-ca on the server, --tls-cert/--tls-key on the
// client; a client without a certificate, or with one from another CA,
// exits with an error that says what to do.

// writeCA makes a CA and a client certificate it signs, as PEM files in
// dir, and returns the paths (ca, cert, key).
func writeCA(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name + " client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, b []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+"-ca.pem", "CERTIFICATE", caDER), write(name+"-client.pem", "CERTIFICATE", der), write(name+"-client.key", "EC PRIVATE KEY", keyDER)
}

func TestMutualTLS(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	ds := newDataServer(t)
	dir := t.TempDir()
	ca, cert, key := writeCA(t, dir, "good")
	_, otherCert, otherKey := writeCA(t, dir, "other")
	_, addr, _ := h.startServer(nil, "--tls-client-ca", ca)
	sp := spec("0", "127.0.0.1", ds.port)

	t.Run("with a certificate from the CA", func(t *testing.T) {
		c := h.startClient(nil, addr, "-L", sp, "--tls-cert", cert, "--tls-key", key)
		waitConnected(t, c, 0, addr, logWait)
		download(t, httpClient(t, nil), waitReady(t, c, 0, "-L", sp), 60, 1<<20)
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"without a certificate", nil},
		{"with a certificate from another CA", []string{"--tls-cert", otherCert, "--tls-key", otherKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.startClient(nil, addr, append([]string{"-L", sp}, tc.args...)...)
			if code := c.waitExit(t, 10*time.Second); code == 0 {
				t.Fatal("client exited 0")
			}
			if msg := c.stderr.String(); !strings.Contains(msg, "refused this client's TLS certificate") || !strings.Contains(msg, "--tls-cert") {
				t.Fatalf("client's error does not say the certificate was refused and what to do:\n%s", msg)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 13. --compress zstd: compressible data crosses intact and the session
// agreed on zstd.

func TestCompressZstd(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	// A target that sends 8 MiB of text (compressible) and closes.
	text := []byte(strings.Repeat("braid compresses this line well; ", 1<<18)) // 8.25 MiB
	target := newTCPTarget(t, func(c net.Conn) { c.Write(text) })
	_, addr, _ := h.startServer(nil, "--metrics", "127.0.0.1:0")
	sp := spec("0", "127.0.0.1", target.port)
	c := h.startClient(nil, addr, "-L", sp, "--compress", "zstd", "--metrics", "127.0.0.1:0")
	cm := waitLog(t, c, regexp.MustCompile(`msg="metrics listening" addr=(\S+)`))[1]
	waitConnected(t, c, 0, addr, logWait)
	conn, err := net.Dial("tcp", waitReady(t, c, 0, "-L", sp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(text) {
		t.Fatalf("got %d bytes, want the %d sent, unchanged", len(got), len(text))
	}
	// Fewer bytes crossed the session than the forward carried.
	body := scrapeMetrics(t, cm)
	fwd := metricValue(t, body, `braid_forward_bytes_total{direction="down",forward="-L `+sp+`",kind="local",role="client"}`)
	wire := metricValue(t, body, `braid_session_bytes_total{direction="received",role="client"}`)
	if fwd < float64(len(text)) || wire > fwd/4 {
		t.Fatalf("forward carried %.0f bytes over %.0f session bytes: want %d carried in under a quarter of that", fwd, wire, len(text))
	}
}

// ---------------------------------------------------------------------------
// 14. SIGHUP skips the wait between reconnection attempts.

func TestSIGHUPSkipsBackoff(t *testing.T) {
	parallel(t)
	h := newHarness(t)
	// An address where nothing listens yet.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := h.start("client", h.env(), "client", "--server", addr, "--reconnect-max", "1m", "--drain-timeout", "1s")
	// Wait until the client waits at least 4 s before its next attempt.
	long := regexp.MustCompile(`in=(\d+(\.\d+)?)s`)
	deadline := time.Now().Add(30 * time.Second)
	for found := false; !found; {
		for _, l := range c.lines() {
			if m := long.FindStringSubmatch(l.raw); m != nil && strings.Contains(l.raw, "msg=reconnecting") {
				d, _ := strconv.ParseFloat(m[1], 64)
				found = found || d >= 4
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("client never waited 4 s or more between attempts:\n%s", c.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Now the server comes up on that address; SIGHUP makes the client
	// try at once instead of at the end of its wait.
	s, _, _ := h.startServerArgs(nil, "server", "--listen", addr, "--drain-timeout", "1s")
	_ = s
	mark := c.mark()
	start := time.Now()
	c.signal(t, syscall.SIGHUP)
	waitConnected(t, c, mark, addr, 3*time.Second)
	t.Logf("connected %v after SIGHUP", time.Since(start).Round(time.Millisecond))
}

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue returns the value of the sample whose name and labels are
// exactly series.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no sample %s in:\n%s", series, grepBraid(body))
	return 0
}
