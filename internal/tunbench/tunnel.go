package tunbench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// startTimeout bounds how long a child may take to log that it is ready.
const startTimeout = 30 * time.Second

// forward is one client forward: flag is "-L", "-R" or "-D".
type forward struct{ flag, spec string }

// tunnel is a running braid server and client on 127.0.0.1. Not safe for
// concurrent use; the children it holds are.
type tunnel struct {
	token       string
	server      *child
	client      *child
	serverAddr  string
	fingerprint string
	serverArgs  []string
	clientArgs  []string
	listen      map[string]string // forward flag → address it listens on
}

// newToken returns a random token for BRAID_TOKEN.
func newToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// startTunnel starts a server and a client with the given forwards (at
// most one per flag) under the home directory dir, and waits until every
// forward is ready and the client is connected. If via is not nil, the
// client is told to connect to via(server address) instead of the server
// (the demo puts a relay in between). On error everything it started is
// stopped.
func startTunnel(ctx context.Context, binary, dir, token string, via func(string) string, fwds ...forward) (_ *tunnel, err error) {
	for _, sub := range []string{"state", "config"} {
		if err := os.MkdirAll(dir+"/"+sub, 0o700); err != nil {
			return nil, err
		}
	}
	env := childEnv(dir, token)
	t := &tunnel{token: token, listen: make(map[string]string)}
	defer func() {
		if err != nil {
			t.stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	t.serverArgs = []string{"server", "--listen", "127.0.0.1:0", "--log-level", "info", "--log-format", "text"}
	if t.server, err = startChild("server", binary, t.serverArgs, env); err != nil {
		return t, err
	}
	kv, err := t.server.waitFor(ctx, "server listening", nil)
	if err != nil {
		return t, err
	}
	t.serverAddr, t.fingerprint = kv["addr"], kv["fingerprint"]
	if t.serverAddr == "" || t.fingerprint == "" {
		return t, fmt.Errorf("braid server's %q line lacks addr= or fingerprint=: %v", "server listening", kv)
	}

	dialAddr := t.serverAddr
	if via != nil {
		dialAddr = via(t.serverAddr)
	}
	t.clientArgs = []string{"client", "--server", dialAddr, "--fingerprint", t.fingerprint,
		"--log-level", "info", "--log-format", "text", "--status", "off"}
	for _, f := range fwds {
		t.clientArgs = append(t.clientArgs, f.flag, f.spec)
	}
	if t.client, err = startChild("client", binary, t.clientArgs, env); err != nil {
		return t, err
	}
	for _, f := range fwds {
		kv, err := t.client.waitFor(ctx, "forward ready", func(kv map[string]string) bool {
			return strings.HasPrefix(kv["forward"], f.flag+" ")
		})
		if err != nil {
			return t, err
		}
		if kv["listen"] == "" {
			return t, fmt.Errorf("braid client's %q line for %s lacks listen=: %v", "forward ready", f.flag, kv)
		}
		t.listen[f.flag] = kv["listen"]
	}
	// Forwards may be ready (listening) before the link is up.
	if _, err := t.client.waitFor(ctx, "connected", nil); err != nil {
		return t, err
	}
	return t, nil
}

// stop stops the client, then the server (each by PID: SIGTERM, a kill
// after stopGrace) and waits for both. It reports children that did not
// exit cleanly.
func (t *tunnel) stop() error {
	var errs []error
	if t.client != nil {
		errs = append(errs, t.client.stop())
	}
	if t.server != nil {
		errs = append(errs, t.server.stop())
	}
	return errors.Join(errs...)
}
