package trust_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/internal/trust"
)

func TestDefaultPaths(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/x/state")
	t.Setenv("XDG_CONFIG_HOME", "/x/config")
	if d, err := trust.DefaultStateDir(); err != nil || d != "/x/state/braid" {
		t.Errorf("DefaultStateDir = %q, %v", d, err)
	}
	if f, err := trust.DefaultKnownHosts(); err != nil || f != "/x/config/braid/known_hosts" {
		t.Errorf("DefaultKnownHosts = %q, %v", f, err)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, err := trust.DefaultStateDir(); err != nil || d != "/home/u/.local/state/braid" {
		t.Errorf("DefaultStateDir = %q, %v", d, err)
	}
	if f, err := trust.DefaultKnownHosts(); err != nil || f != "/home/u/.config/braid/known_hosts" {
		t.Errorf("DefaultKnownHosts = %q, %v", f, err)
	}
}

func TestIdentityCreatedOnceAndReloaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "braid")
	c1, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp1, err := trust.CertFingerprint(c1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(fp1, "SHA256:") || len(fp1) != len("SHA256:")+43 {
		t.Errorf("fingerprint %q has the wrong form", fp1)
	}
	key1, _ := os.ReadFile(filepath.Join(dir, trust.KeyFile))
	crt1, _ := os.ReadFile(filepath.Join(dir, trust.CertFile))

	c2, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	fp2, _ := trust.CertFingerprint(c2)
	if fp1 != fp2 {
		t.Errorf("fingerprint changed on reload: %s then %s", fp1, fp2)
	}
	key2, _ := os.ReadFile(filepath.Join(dir, trust.KeyFile))
	crt2, _ := os.ReadFile(filepath.Join(dir, trust.CertFile))
	if string(key1) != string(key2) || string(crt1) != string(crt2) {
		t.Error("identity files were rewritten on reload")
	}
	if string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Error("reloaded certificate differs")
	}

	mode := func(p string) os.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if m := mode(dir); m != 0o700 {
		t.Errorf("state dir mode %o, want 700", m)
	}
	if m := mode(filepath.Join(dir, trust.KeyFile)); m != 0o600 {
		t.Errorf("key mode %o, want 600", m)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("state dir holds %d entries, want 2 (no temp files left): %v", len(ents), ents)
	}
	leaf := c1.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if leaf.NotAfter.Before(time.Now().AddDate(50, 0, 0)) {
		t.Errorf("certificate expires %v; want a long validity", leaf.NotAfter)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("key is %T, want ECDSA", leaf.PublicKey)
	}
}

func TestIdentityKeyWithoutCertKeepsFingerprint(t *testing.T) {
	dir := t.TempDir()
	c1, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, trust.CertFile)); err != nil {
		t.Fatal(err)
	}
	c2, err := trust.LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(c1.Certificate[0]) == string(c2.Certificate[0]) {
		t.Error("expected a new certificate")
	}
	fp1, _ := trust.CertFingerprint(c1)
	fp2, _ := trust.CertFingerprint(c2)
	if fp1 != fp2 {
		t.Errorf("re-issued certificate for the same key changed fingerprint: %s vs %s", fp1, fp2)
	}
}

func TestIdentityCertWithoutKeyIsError(t *testing.T) {
	dir := t.TempDir()
	if _, err := trust.LoadOrCreateIdentity(dir); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, trust.KeyFile))
	_, err := trust.LoadOrCreateIdentity(dir)
	if err == nil || !strings.Contains(err.Error(), trust.KeyFile) {
		t.Fatalf("err = %v, want one naming the missing key", err)
	}
	if _, serr := os.Stat(filepath.Join(dir, trust.KeyFile)); serr == nil {
		t.Error("a new key was created next to an old certificate")
	}
}

func TestIdentityConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	fps := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := trust.LoadOrCreateIdentity(dir)
			if err == nil {
				fps[i], err = trust.CertFingerprint(c)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if fps[i] != fps[0] {
			t.Fatalf("concurrent creators got different identities: %s vs %s", fps[i], fps[0])
		}
	}
}

func TestIdentityCorrupt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, trust.KeyFile), []byte("junk"), 0o600)
	os.WriteFile(filepath.Join(dir, trust.CertFile), []byte("junk"), 0o644)
	_, err := trust.LoadOrCreateIdentity(dir)
	if err == nil || !strings.Contains(err.Error(), "delete") {
		t.Fatalf("err = %v, want an error saying what to delete", err)
	}
}

func TestFingerprintPinsKeyNotCert(t *testing.T) {
	key := newKey(t)
	a := selfSigned(t, key, "a")
	b := selfSigned(t, key, "b")
	if string(a.Raw) == string(b.Raw) {
		t.Fatal("test certificates are identical")
	}
	if trust.Fingerprint(a) != trust.Fingerprint(b) {
		t.Error("same key, different fingerprints")
	}
	if trust.Fingerprint(a) == trust.Fingerprint(selfSigned(t, newKey(t), "a")) {
		t.Error("different keys, same fingerprint")
	}
	if _, err := trust.CertFingerprint(tls.Certificate{}); err == nil {
		t.Error("CertFingerprint of an empty certificate succeeded")
	}
	// Leaf not set: parsed from the DER.
	fp, err := trust.CertFingerprint(tls.Certificate{Certificate: [][]byte{a.Raw}})
	if err != nil || fp != trust.Fingerprint(a) {
		t.Errorf("CertFingerprint = %q, %v", fp, err)
	}
}

func TestParseFingerprint(t *testing.T) {
	good := trust.Fingerprint(selfSigned(t, newKey(t), "x"))
	if got, err := trust.ParseFingerprint(good); err != nil || got != good {
		t.Errorf("ParseFingerprint(%q) = %q, %v", good, got, err)
	}
	lower := "sha256:" + strings.TrimPrefix(good, "SHA256:")
	if got, err := trust.ParseFingerprint(lower); err != nil || got != good {
		t.Errorf("ParseFingerprint(%q) = %q, %v", lower, got, err)
	}
	for _, bad := range []string{"", "SHA256:", "MD5:abc", good + "A", good[:len(good)-1], good + "=", "SHA256:" + strings.Repeat("!", 43)} {
		if _, err := trust.ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) succeeded", bad)
		}
	}
}

func TestParseKnownHosts(t *testing.T) {
	fp := trust.Fingerprint(selfSigned(t, newKey(t), "x"))
	good := "# comment\n\n  host.example.com:7000   " + fp + "  \r\n[::1]:22\t" + fp + "\n"
	hosts, err := trust.ParseKnownHosts([]byte(good), "kh")
	if err != nil {
		t.Fatal(err)
	}
	want := []trust.KnownHost{{"host.example.com:7000", fp, 3}, {"[::1]:22", fp, 4}}
	if fmt.Sprint(hosts) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", hosts, want)
	}
	for _, tc := range []struct{ data, wantLine string }{
		{"host:1\n", "line 1"},
		{"# c\nhost:1 " + fp + " extra\n", "line 2"},
		{"\n\nhost " + fp + "\n", "line 3"},
		{"host:1 SHA256:nope\n", "line 1"},
		{":1 " + fp, "line 1"},
		{"host: " + fp, "line 1"},
		{"::1:22 " + fp, "line 1"},
		{"host:1 " + fp + "\nhost:2 md5:00\n", "line 2"},
	} {
		_, err := trust.ParseKnownHosts([]byte(tc.data), "/some/known_hosts")
		if err == nil {
			t.Errorf("%q: no error", tc.data)
			continue
		}
		if !strings.Contains(err.Error(), "/some/known_hosts") || !strings.Contains(err.Error(), tc.wantLine+":") {
			t.Errorf("%q: error %q does not name the file and %s", tc.data, err, tc.wantLine)
		}
	}
}

// --- TLS handshakes -------------------------------------------------------

// handshake runs a real TLS handshake over loopback TCP and returns the
// client's and the server's error. The server writes one byte after its
// handshake and the client reads it, so a refusal by the server after the
// client's half of a TLS 1.3 handshake shows up on the client too.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvDone := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, srvCfg)
		if err := tc.Handshake(); err != nil {
			srvDone <- err
			return
		}
		_, err = tc.Write([]byte{1})
		srvDone <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, cliCfg)
	clientErr = tc.Handshake()
	if clientErr == nil {
		if tc.ConnectionState().NegotiatedProtocol != trust.ALPN {
			t.Errorf("ALPN %q, want %q", tc.ConnectionState().NegotiatedProtocol, trust.ALPN)
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("TLS version %x, want 1.3", v)
		}
		var b [1]byte
		_, clientErr = tc.Read(b[:])
	}
	c.Close()
	return clientErr, <-srvDone
}

func serverConfig(t *testing.T) (*tls.Config, string) {
	t.Helper()
	id, err := trust.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := trust.ServerConfig(id, "")
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := trust.CertFingerprint(id)
	return cfg, fp
}

func clientConfig(t *testing.T, o trust.ClientOptions) *tls.Config {
	t.Helper()
	cfg, err := trust.ClientConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPin(t *testing.T) {
	srv, fp := serverConfig(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	ok := clientConfig(t, trust.ClientOptions{Addr: "127.0.0.1:7000", Fingerprint: fp, KnownHosts: kh})
	if cerr, serr := handshake(t, srv, ok); cerr != nil || serr != nil {
		t.Fatalf("pinned handshake: client %v, server %v", cerr, serr)
	}

	_, other := serverConfig(t)
	bad := clientConfig(t, trust.ClientOptions{Addr: "127.0.0.1:7000", Fingerprint: other, KnownHosts: kh})
	cerr, serr := handshake(t, srv, bad)
	var pe *trust.PinMismatchError
	if !errors.As(cerr, &pe) {
		t.Fatalf("client error %v (%T), want a *PinMismatchError", cerr, cerr)
	}
	if pe.Want != other || pe.Got != fp || pe.Addr != "127.0.0.1:7000" {
		t.Errorf("PinMismatchError = %+v", pe)
	}
	if !strings.Contains(cerr.Error(), fp) || !strings.Contains(cerr.Error(), other) {
		t.Errorf("message %q lacks the fingerprints", cerr)
	}
	if serr == nil {
		t.Error("server handshake succeeded")
	}
	if _, err := os.Stat(kh); err == nil {
		t.Error("known_hosts written although a fingerprint was pinned")
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	srv, fp := serverConfig(t)
	kh := filepath.Join(t.TempDir(), "new", "dir", "known_hosts")
	var calls []string
	opts := trust.ClientOptions{
		Addr:       "LocalHost:7000",
		KnownHosts: kh,
		OnFirstUse: func(addr, f string) { calls = append(calls, addr+" "+f) },
	}
	if cerr, serr := handshake(t, srv, clientConfig(t, opts)); cerr != nil || serr != nil {
		t.Fatalf("first use: client %v, server %v", cerr, serr)
	}
	if len(calls) != 1 || calls[0] != "LocalHost:7000 "+fp {
		t.Errorf("OnFirstUse calls %q", calls)
	}
	data, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "localhost:7000 "+fp+"\n" {
		t.Errorf("known_hosts = %q", data)
	}
	if st, _ := os.Stat(kh); st.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %o, want 600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(kh)); st.Mode().Perm() != 0o700 {
		t.Errorf("known_hosts dir mode %o, want 700", st.Mode().Perm())
	}

	// Second connection: accepted from the file, nothing recorded.
	if cerr, serr := handshake(t, srv, clientConfig(t, opts)); cerr != nil || serr != nil {
		t.Fatalf("second use: client %v, server %v", cerr, serr)
	}
	if len(calls) != 1 {
		t.Errorf("OnFirstUse called again: %q", calls)
	}
	if again, _ := os.ReadFile(kh); string(again) != string(data) {
		t.Errorf("known_hosts changed to %q", again)
	}

	// A different address is a different entry.
	opts.Addr = "127.0.0.1:7000"
	if cerr, _ := handshake(t, srv, clientConfig(t, opts)); cerr != nil {
		t.Fatal(cerr)
	}
	if len(calls) != 2 {
		t.Errorf("OnFirstUse calls %q", calls)
	}
}

func TestKeyChangedRefused(t *testing.T) {
	srvOld, fpOld := serverConfig(t)
	srvNew, fpNew := serverConfig(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	// A hand-edited file: comments, another host, no final newline.
	os.WriteFile(kh, []byte("# mine\nother:1 "+fpNew+"\n\nexample.com:7000 "+fpOld), 0o600)
	opts := trust.ClientOptions{Addr: "example.com:7000", KnownHosts: kh,
		OnFirstUse: func(string, string) { t.Error("OnFirstUse called") }}
	if cerr, serr := handshake(t, srvOld, clientConfig(t, opts)); cerr != nil || serr != nil {
		t.Fatalf("known key: client %v, server %v", cerr, serr)
	}
	before, _ := os.ReadFile(kh)
	cerr, serr := handshake(t, srvNew, clientConfig(t, opts))
	var ke *trust.KeyChangedError
	if !errors.As(cerr, &ke) {
		t.Fatalf("client error %v (%T), want a *KeyChangedError", cerr, cerr)
	}
	want := trust.KeyChangedError{Addr: "example.com:7000", Known: fpOld, Got: fpNew, File: kh, Line: 4}
	if *ke != want {
		t.Errorf("got %+v, want %+v", *ke, want)
	}
	wantMsg := fmt.Sprintf("server key changed for example.com:7000: known_hosts (%s line 4) has %s, server sent %s; "+
		"if the server's key was replaced on purpose, remove line 4 from %s (or pass --fingerprint %s); "+
		"otherwise someone may be intercepting the connection", kh, fpOld, fpNew, kh, fpNew)
	if ke.Error() != wantMsg {
		t.Errorf("message\n%s\nwant\n%s", ke.Error(), wantMsg)
	}
	if !strings.Contains(cerr.Error(), "server key changed") {
		t.Errorf("handshake error %q lacks \"server key changed\"", cerr)
	}
	if serr == nil {
		t.Error("server handshake succeeded")
	}
	if after, _ := os.ReadFile(kh); string(after) != string(before) {
		t.Errorf("known_hosts changed by a refused connection: %q", after)
	}

	// Adding the new key (any recorded key is accepted) lets it through.
	f, _ := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "\nexample.com:7000 %s\n", fpNew)
	f.Close()
	if cerr, _ := handshake(t, srvNew, clientConfig(t, opts)); cerr != nil {
		t.Fatalf("after adding the new key: %v", cerr)
	}
}

func TestFirstUseAppendsAfterUnterminatedLine(t *testing.T) {
	srv, fp := serverConfig(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte("other:1 "+fp), 0o600)
	if cerr, _ := handshake(t, srv, clientConfig(t, trust.ClientOptions{Addr: "h:2", KnownHosts: kh})); cerr != nil {
		t.Fatal(cerr)
	}
	data, _ := os.ReadFile(kh)
	hosts, err := trust.ParseKnownHosts(data, kh)
	if err != nil || len(hosts) != 2 {
		t.Fatalf("after append: %q: %v, %v", data, hosts, err)
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	srv, fp := serverConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var srvWG sync.WaitGroup
	const n = 16
	srvWG.Go(func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srvWG.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tls.Server(c, srv).Handshake()
			})
		}
	})
	kh := filepath.Join(t.TempDir(), "known_hosts")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			cfg, err := trust.ClientConfig(trust.ClientOptions{Addr: fmt.Sprintf("h%d:1", i), KnownHosts: kh})
			if err != nil {
				errs <- err
				return
			}
			c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	srvWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	data, _ := os.ReadFile(kh)
	hosts, err := trust.ParseKnownHosts(data, kh)
	if err != nil || len(hosts) != n {
		t.Fatalf("%d entries, err %v; file:\n%s", len(hosts), err, data)
	}
	for _, h := range hosts {
		if h.Fingerprint != fp {
			t.Errorf("entry %v", h)
		}
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	badKH := filepath.Join(dir, "bad")
	os.WriteFile(badKH, []byte("ok:1 SHA256:x\n"), 0o600)
	for _, tc := range []struct {
		o    trust.ClientOptions
		want string
	}{
		{trust.ClientOptions{Addr: "nohost", KnownHosts: "kh"}, "HOST:PORT"},
		{trust.ClientOptions{Addr: "h:1"}, "--fingerprint"},
		{trust.ClientOptions{Addr: "h:1", Fingerprint: "SHA256:short"}, "--fingerprint"},
		{trust.ClientOptions{Addr: "h:1", KnownHosts: badKH}, badKH + " line 1"},
	} {
		_, err := trust.ClientConfig(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one containing %q", tc.o, err, tc.want)
		}
	}
}

func TestMalformedKnownHostsAtHandshake(t *testing.T) {
	srv, _ := serverConfig(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	cfg := clientConfig(t, trust.ClientOptions{Addr: "h:1", KnownHosts: kh})
	os.WriteFile(kh, []byte("garbage\n"), 0o600) // broken after the config was made
	cerr, _ := handshake(t, srv, cfg)
	if cerr == nil || !strings.Contains(cerr.Error(), kh+" line 1") {
		t.Fatalf("err %v, want one naming %s line 1", cerr, kh)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t, "test CA")
	otherCA, otherKey := newCA(t, "other CA")
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644)

	id, err := trust.LoadOrCreateIdentity(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := trust.ServerConfig(id, caFile)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := trust.CertFingerprint(id)

	client := func(cert *tls.Certificate) *tls.Config {
		return clientConfig(t, trust.ClientOptions{Addr: "127.0.0.1:1", Fingerprint: fp, ClientCert: cert})
	}
	good := clientCert(t, ca, caKey)
	if cerr, serr := handshake(t, srv, client(&good)); cerr != nil || serr != nil {
		t.Fatalf("signed client cert: client %v, server %v", cerr, serr)
	}
	cerr, serr := handshake(t, srv, client(nil))
	if cerr == nil || serr == nil {
		t.Errorf("no client cert: client %v, server %v; want both to fail", cerr, serr)
	}
	wrong := clientCert(t, otherCA, otherKey)
	cerr, serr = handshake(t, srv, client(&wrong))
	if cerr == nil || serr == nil {
		t.Errorf("client cert from another CA: client %v, server %v; want both to fail", cerr, serr)
	}
	// crypto/tls leaves out a client certificate that the server's list of
	// CAs does not cover; force it out to see the server check the chain.
	forced := client(&wrong)
	forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &wrong, nil }
	cerr, serr = handshake(t, srv, forced)
	if cerr == nil {
		t.Error("client cert from another CA, forced: client succeeded")
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(serr, &uerr) {
		t.Errorf("server error %v (%T), want an x509.UnknownAuthorityError", serr, serr)
	}
}

func TestServerConfigErrors(t *testing.T) {
	id, err := trust.LoadOrCreateIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.ServerConfig(id, filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("missing CA file accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not pem"), 0o644)
	if _, err := trust.ServerConfig(id, empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("CA file without certificates: %v", err)
	}
	if _, err := trust.ServerConfig(tls.Certificate{}, ""); err == nil {
		t.Error("empty certificate accepted")
	}
	cfg, err := trust.ServerConfig(id, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "braid/1" || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("ServerConfig = %+v", cfg)
	}
}

func TestLoadIdentity(t *testing.T) {
	dir := t.TempDir()
	if _, err := trust.LoadOrCreateIdentity(dir); err != nil {
		t.Fatal(err)
	}
	c, err := trust.LoadIdentity(filepath.Join(dir, trust.CertFile), filepath.Join(dir, trust.KeyFile))
	if err != nil || c.Leaf == nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if _, err := trust.LoadIdentity(filepath.Join(dir, "nope.crt"), filepath.Join(dir, trust.KeyFile)); err == nil || !strings.Contains(err.Error(), "nope.crt") {
		t.Errorf("missing cert: %v", err)
	}
}

// --- certificate helpers --------------------------------------------------

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var serial int64

func selfSigned(t *testing.T, key *ecdsa.PrivateKey, cn string) *x509.Certificate {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t *testing.T, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "client"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
