package trust

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// ALPN is the TLS application protocol braid negotiates.
const ALPN = "braid/1"

// ServerConfig returns the TLS configuration of a braid server presenting
// cert: TLS 1.3 only, ALPN "braid/1". If clientCAFile is not empty, every
// client must present a certificate signed by one of the CA certificates
// (PEM) in that file.
func ServerConfig(cert tls.Certificate, clientCAFile string) (*tls.Config, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("trust: server certificate is empty")
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{ALPN},
		Certificates: []tls.Certificate{cert},
	}
	if clientCAFile != "" {
		pemData, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("client CA file %s holds no PEM certificate; give --tls-client-ca a file with \"-----BEGIN CERTIFICATE-----\" blocks", clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientOptions says how a client decides to trust the server.
type ClientOptions struct {
	// Addr is the server address (HOST:PORT) as the user wrote it; it is the
	// key of the known_hosts entry and the TLS server name.
	Addr string
	// Fingerprint, if set, pins the server key: any other key fails the
	// handshake with a *PinMismatchError, and KnownHosts is not used.
	Fingerprint string
	// KnownHosts is the known_hosts file used when Fingerprint is empty:
	// an unknown server is recorded there (trust on first use) and a known
	// server presenting an unrecorded key fails with a *KeyChangedError.
	KnownHosts string
	// OnFirstUse, if not nil, is called (during the handshake) after a new
	// server has been recorded in KnownHosts.
	OnFirstUse func(addr, fingerprint string)
	// ClientCert, if not nil, is presented to servers that ask for one (mTLS).
	ClientCert *tls.Certificate
}

// ClientConfig returns the TLS configuration for connecting to o.Addr:
// TLS 1.3 only, ALPN "braid/1", and instead of the usual CA and name checks,
// a check of the server key against o.Fingerprint or the known_hosts file.
// The known_hosts file is checked for syntax now and read again at every
// handshake. When the check fails, the error returned by the handshake
// (for example by (*tls.Conn).Handshake) wraps a *PinMismatchError or a
// *KeyChangedError; find it with errors.As.
//
// The returned config may be used for any number of concurrent handshakes.
func ClientConfig(o ClientOptions) (*tls.Config, error) {
	if err := checkAddr(o.Addr); err != nil {
		return nil, fmt.Errorf("server %v; write it as HOST:PORT, e.g. tunnel.example.com:7000 or [::1]:7000", err)
	}
	addr := strings.ToLower(o.Addr)
	host, _, _ := net.SplitHostPort(o.Addr)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN},
		ServerName: host,
		// The server certificate is self-signed; VerifyConnection checks its
		// key instead of a CA chain.
		InsecureSkipVerify: true,
	}
	if o.ClientCert != nil {
		cfg.Certificates = []tls.Certificate{*o.ClientCert}
	}
	var verify func(got string) error
	switch {
	case o.Fingerprint != "":
		want, err := ParseFingerprint(o.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("--fingerprint: %v", err)
		}
		verify = func(got string) error {
			if got != want {
				return &PinMismatchError{Addr: o.Addr, Want: want, Got: got}
			}
			return nil
		}
	case o.KnownHosts != "":
		if _, err := readKnownHosts(o.KnownHosts); err != nil {
			return nil, err
		}
		verify = func(got string) error { return checkKnownHosts(o, addr, got) }
	default:
		return nil, errors.New("trust: no way to check the server: pass --fingerprint SHA256:... or a known_hosts file")
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("server %s sent no certificate", o.Addr)
		}
		return verify(Fingerprint(cs.PeerCertificates[0]))
	}
	return cfg, nil
}

// checkKnownHosts accepts got if it is recorded for addr in the known_hosts
// file, records it if addr has no entry, and refuses it otherwise.
func checkKnownHosts(o ClientOptions, addr, got string) error {
	hosts, err := readKnownHosts(o.KnownHosts)
	if err != nil {
		return err
	}
	var first *KnownHost
	for i := range hosts {
		h := &hosts[i]
		if !strings.EqualFold(h.Addr, addr) {
			continue
		}
		if h.Fingerprint == got {
			return nil
		}
		if first == nil {
			first = h
		}
	}
	if first != nil {
		return &KeyChangedError{Addr: o.Addr, Known: first.Fingerprint, Got: got, File: o.KnownHosts, Line: first.Line}
	}
	if err := appendKnownHost(o.KnownHosts, addr, got); err != nil {
		return err
	}
	if o.OnFirstUse != nil {
		o.OnFirstUse(o.Addr, got)
	}
	return nil
}

// KeyChangedError reports that a server known from the known_hosts file
// presented a different key.
type KeyChangedError struct {
	Addr  string // server address
	Known string // fingerprint recorded in File
	Got   string // fingerprint the server presented
	File  string // known_hosts file
	Line  int    // line of the recorded entry
}

func (e *KeyChangedError) Error() string {
	return fmt.Sprintf("server key changed for %s: known_hosts (%s line %d) has %s, server sent %s; "+
		"if the server's key was replaced on purpose, remove line %d from %s (or pass --fingerprint %s); "+
		"otherwise someone may be intercepting the connection",
		e.Addr, e.File, e.Line, e.Known, e.Got, e.Line, e.File, e.Got)
}

// PinMismatchError reports that the server did not present the key pinned
// with --fingerprint.
type PinMismatchError struct {
	Addr string // server address
	Want string // pinned fingerprint
	Got  string // fingerprint the server presented
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("server key mismatch for %s: --fingerprint is %s, server sent %s; "+
		"compare with the fingerprint in the server's \"server listening\" log line: "+
		"if it is %s, the server key changed or --fingerprint is wrong, so update --fingerprint; "+
		"if it is %s, someone may be intercepting the connection",
		e.Addr, e.Want, e.Got, e.Got, e.Want)
}
