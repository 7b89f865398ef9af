// Command braid is a tunnel: one TLS connection from a client to a server
// carries every forwarded connection as a braid stream. Forwards use
// ssh's syntax (-L, -R, -D); the server authenticates clients by token,
// pins its identity by fingerprint, and decides by rules which forwards
// each client may use. Run "braid demo" to see it work, "braid help" for
// the commands.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/braidmux/braid/internal/auth"
	"github.com/braidmux/braid/internal/metrics"
	"github.com/braidmux/braid/internal/status"
	"github.com/braidmux/braid/internal/trust"
	"github.com/braidmux/braid/internal/tunbench"
	"github.com/braidmux/braid/internal/tunnel"
	"github.com/braidmux/braid/session"
)

func main() {
	// A tunnel holds little live memory; a lower GC target keeps its
	// resident set small with thousands of idle connections.
	debug.SetGCPercent(50)
	if err := newRoot().Execute(); err != nil {
		os.Exit(1)
	}
}

// common holds the flags every long-running command has.
type common struct {
	cpuProfile string
	config     string
	metrics    string
	logFormat  string
	logLevel   string
}

func (c *common) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.config, "config", "", "TOML file whose keys are this command's flag names (flags and BRAID_* variables override it)")
	f.StringVar(&c.metrics, "metrics", "", "serve Prometheus metrics on HOST:PORT at /metrics")
	f.StringVar(&c.logFormat, "log-format", "text", "log format: text or json (logs go to stderr)")
	f.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&c.cpuProfile, "cpu-profile", "", "write a CPU profile to this file until exit (for developers)")
}

// profile starts the CPU profile if asked for; the returned func stops it.
func (c *common) profile() func() {
	if c.cpuProfile == "" {
		return func() {}
	}
	f, err := os.Create(c.cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "braid: --cpu-profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "braid: --cpu-profile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// logger builds the slog logger writing to w.
func (c *common) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", c.logFormat)
}

// prepare applies BRAID_* variables and the config file to cmd's flags.
func (c *common) prepare(cmd *cobra.Command) error {
	if !cmd.Flags().Changed("config") {
		if v := os.Getenv("BRAID_CONFIG"); v != "" {
			c.config = v
		}
	}
	return applySources(cmd.Flags(), c.config)
}

// fatal logs err and returns it, so Execute exits 1.
func fatal(log *slog.Logger, err error) error {
	log.Error(err.Error())
	return err
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "braid",
		Short: "braid: many TCP connections through one TLS connection (-L, -R, -D, as ssh)",
		Long: `braid tunnels TCP connections through one TLS connection to a braid server,
each forwarded connection a stream of one braid session: ssh's -L, -R and -D,
with token auth, pinned server keys, per-user rules, reconnection, metrics.

Try it:   braid demo
Server:   export BRAID_TOKEN=$(braid token); braid server --listen 0.0.0.0:7000
Client:   BRAID_TOKEN=... braid client --server HOST:7000 -L 8080:localhost:80

Every flag can also be set by the variable BRAID_<FLAG> (upper case, '-' as '_';
a repeated flag takes a comma-separated list) or in the --config file; a flag
on the command line wins over the variable, which wins over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetErrPrefix("braid:")
	root.AddCommand(newServerCmd(), newClientCmd(), newTokenCmd(), newDemoCmd(), newBenchCmd(), newVersionCmd())
	root.CompletionOptions.DisableDefaultCmd = true
	// Errors from flag parsing (before a logger exists) go to stderr.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprintf(os.Stderr, "braid %s: %v (see braid help %s)\n", cmd.Name(), err, cmd.Name())
		return err
	})
	return root
}

// signalContext returns a context cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// readToken returns BRAID_TOKEN or the first line of file.
func readToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		tok := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if tok == "" {
			return "", fmt.Errorf("--token-file %s is empty: put the token on its first line (make one with braid token)", file)
		}
		return tok, nil
	}
	return strings.TrimSpace(os.Getenv("BRAID_TOKEN")), nil
}

func startMetrics(ctx context.Context, log *slog.Logger, addr, role string, snap func() tunnel.Snapshot) error {
	if addr == "" {
		return nil
	}
	a, err := metrics.Serve(ctx, addr, metrics.New(role, snap))
	if err != nil {
		return err
	}
	log.Info("metrics listening", "addr", a.String(), "path", "/metrics")
	return nil
}

const serverLong = `Run a braid server: clients connect to --listen over TLS, log in with a
token, and forward connections through it.

Identity: without --tls-cert/--tls-key the server creates a key and a
self-signed certificate once in --state-dir and reuses them, so its
fingerprint (logged at start, "server listening ... fingerprint=SHA256:...")
stays the same across restarts. Clients pin it with --fingerprint or trust it
on first use. --tls-client-ca additionally requires client certificates (mTLS).

Auth: one shared token from BRAID_TOKEN or --token-file (make one with
"braid token"), or an --auth-file of users:

    [[user]]
    name = "alice"
    token_hash = "sha256:..."            # braid token --hash < alice.token
    allow = ["R:127.0.0.1:9000-9100"]    # optional, this user's rules
    max_forwards = 10                    # optional
    max_conns = 100                      # optional

A connection that has not logged in within --auth-timeout is closed; at most
--max-unauthenticated may be in that phase. Nothing is forwarded or bound
before the login succeeds.

Resuming: when a client's connection breaks, its session, its -R ports and
its live connections are kept for --resume-timeout (default 60s); a client
that comes back in time proves it holds the session's secret (no new login)
and every connection carries on byte for byte. A resuming connection must
finish TLS and its resume handshake within --auth-timeout, and counts
against --max-unauthenticated only until it asks to resume. --resume-timeout 0
turns resuming off: a broken connection ends the session and frees its ports.

Rules (--allow, repeatable, and allow in the auth file): KIND:HOST:PORTS
  KIND   L, R, D or a combination (LD): -L and -D rules match the destination
         the server dials, -R rules the address the server binds.
  HOST   *, an IP (IPv6 in []), a CIDR (10.0.0.0/8, [fd00::/8]), a host name,
         or *.suffix for its subdomains.
  PORTS  *, N, N-M, or a comma list of those.
For a kind with no rules the default applies: -L and -D may reach anything,
-R may bind loopback only. Once a kind has rules, a forward must match one.
Global rules and the user's rules must both allow a forward. A refused
forward is reported to the client with the rule set that refused it.
Examples: --allow 'R:*:8000-8999' --allow 'LD:10.0.0.0/8:*' --allow 'L:*.internal:443'

Signals: SIGINT or SIGTERM stops accepting, tells clients (GOAWAY), waits up
to --drain-timeout for live connections and exits 0.

Every flag can also be set by BRAID_<FLAG> (upper case, '-' as '_'; a
repeated flag takes a comma-separated list: BRAID_LOCAL=8080:db:5432,9090:web:80)
or in --config (TOML; keys are flag names); command line > variable > file.`

func newServerCmd() *cobra.Command {
	var (
		c                                     common
		listen, authFile, tokenFile, stateDir string
		tlsCert, tlsKey, tlsClientCA          string
		allow                                 []string
		authTimeout, drain, keepAlive, kaTime time.Duration
		resumeTimeout                         time.Duration
		maxUnauth, maxForwards, maxConns      int
	)
	cmd := &cobra.Command{
		Use:   "server --listen HOST:PORT [flags]",
		Short: "run a tunnel server",
		Long:  serverLong,
		Args:  cobra.NoArgs,
	}
	c.register(cmd)
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "HOST:PORT to accept clients on (port 0 picks one; required)")
	f.StringVar(&authFile, "auth-file", "", "TOML file of users, each with a token hash and its own rules")
	f.StringVar(&tokenFile, "token-file", "", "file holding the one shared token (else BRAID_TOKEN)")
	f.StringVar(&tlsCert, "tls-cert", "", "certificate file (PEM); default: a self-signed one kept in --state-dir")
	f.StringVar(&tlsKey, "tls-key", "", "key file (PEM) for --tls-cert")
	f.StringVar(&tlsClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM)")
	f.StringArrayVar(&allow, "allow", nil, "rule KIND:HOST:PORTS allowing forwards (repeatable; see above)")
	f.StringVar(&stateDir, "state-dir", "", "where the server's key is kept (default $XDG_STATE_HOME/braid or ~/.local/state/braid)")
	f.DurationVar(&authTimeout, "auth-timeout", 10*time.Second, "close connections not logged in within this time")
	f.IntVar(&maxUnauth, "max-unauthenticated", 64, "most connections allowed before login")
	f.IntVar(&maxForwards, "max-forwards", 64, "most -R forwards per client")
	f.IntVar(&maxConns, "max-conns", 4096, "most open forwarded connections per client")
	f.DurationVar(&drain, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this long for live connections")
	f.DurationVar(&keepAlive, "keepalive", 10*time.Second, "PING interval on each session")
	f.DurationVar(&kaTime, "keepalive-timeout", 15*time.Second, "drop a client's connection whose PING is unanswered this long")
	f.DurationVar(&resumeTimeout, "resume-timeout", 60*time.Second, "keep a client's session this long after its connection broke, for it to resume (0: off)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := c.prepare(cmd); err != nil {
			fmt.Fprintln(os.Stderr, "braid server:", err)
			return err
		}
		log, err := c.logger(os.Stderr)
		if err != nil {
			fmt.Fprintln(os.Stderr, "braid server:", err)
			return err
		}
		defer c.profile()()
		if listen == "" {
			return fatal(log, errors.New("braid server needs --listen HOST:PORT (or listen in --config, or BRAID_LISTEN)"))
		}
		users, err := loadUsers(authFile, tokenFile)
		if err != nil {
			return fatal(log, err)
		}
		policy := &auth.Policy{}
		for _, r := range allow {
			rule, err := auth.ParseRule(r)
			if err != nil {
				return fatal(log, fmt.Errorf("--allow: %w", err))
			}
			policy.Global = append(policy.Global, rule)
		}
		var cert tls.Certificate
		switch {
		case tlsCert != "" || tlsKey != "":
			if tlsCert == "" || tlsKey == "" {
				return fatal(log, errors.New("--tls-cert and --tls-key go together"))
			}
			cert, err = trust.LoadIdentity(tlsCert, tlsKey)
		default:
			if stateDir == "" {
				if stateDir, err = trust.DefaultStateDir(); err != nil {
					return fatal(log, err)
				}
			}
			cert, err = trust.LoadOrCreateIdentity(stateDir)
		}
		if err != nil {
			return fatal(log, err)
		}
		fp, err := trust.CertFingerprint(cert)
		if err != nil {
			return fatal(log, err)
		}
		tlsCfg, err := trust.ServerConfig(cert, tlsClientCA)
		if err != nil {
			return fatal(log, err)
		}
		srv, err := tunnel.NewServer(tunnel.ServerConfig{
			TLS: tlsCfg, Users: users, Policy: policy,
			AuthTimeout: authTimeout, MaxUnauthenticated: maxUnauth,
			MaxForwards: maxForwards, MaxConns: maxConns,
			KeepAlive: keepAlive, KeepAliveTimeout: kaTime,
			ResumeTimeout: resumeFlag(resumeTimeout),
			Logger:        log,
		})
		if err != nil {
			return fatal(log, err)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fatal(log, fmt.Errorf("cannot listen on %s: %w", listen, err))
		}
		ctx, stop := signalContext()
		defer stop()
		if err := startMetrics(ctx, log, c.metrics, "server", srv.Snapshot); err != nil {
			ln.Close()
			return fatal(log, err)
		}
		log.Info("server listening", "addr", ln.Addr().String(), "fingerprint", fp)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case err := <-served:
			srv.Close()
			return fatal(log, err)
		case <-ctx.Done():
		}
		stop()
		log.Info("shutting down: draining live connections", "timeout", drain)
		dctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		if err := srv.Shutdown(dctx); err != nil {
			log.Warn("drain timeout: live connections were closed", "timeout", drain)
		}
		<-served
		log.Info("server stopped")
		return nil
	}
	return cmd
}

func loadUsers(authFile, tokenFile string) (*auth.Users, error) {
	tok, err := readToken(tokenFile)
	if err != nil {
		return nil, err
	}
	if authFile != "" {
		if tok != "" && tokenFile != "" {
			return nil, errors.New("use either --auth-file or --token-file, not both")
		}
		return auth.LoadUsersFile(authFile)
	}
	if tok == "" {
		return nil, errors.New("no token: set BRAID_TOKEN (make one with: export BRAID_TOKEN=$(braid token)), or --token-file, or --auth-file")
	}
	return auth.SingleToken(tok)
}

const clientLong = `Run a braid client: connect to a braid server and carry forwards through it.

Forwards (repeatable; ssh's syntax; the listening side binds loopback unless
BIND is given, "*" for every interface; IPv6 in []; port 0 picks a port and
logs it in a "forward ready" line):
  -L [BIND:]PORT:HOST:HOSTPORT   listen here, connect to HOST:HOSTPORT from the server
  -R [BIND:]PORT:HOST:HOSTPORT   listen on the server, connect to HOST:HOSTPORT from here
  -D [BIND:]PORT                 SOCKS5 proxy here (CONNECT; names resolved by the server)

In --config files, forwards are tables:
    [[forward]]
    local = "8080:localhost:80"

Trust: --fingerprint SHA256:... pins the server key (logged by the server at
start). Without it the key is trusted on first use and recorded in
--known-hosts; a server whose key later differs is refused, with what to do.

The token comes from BRAID_TOKEN or --token-file, never from the command
line. A refused token ends the client with exit status 1 (no retries).

Staying up: the client notices a dead link within --keepalive +
--keepalive-timeout and dials again at once. For up to --resume-timeout
(default 60s; 0 turns it off) it resumes its session: live connections
through -L, -R and -D carry on byte for byte after the pause, and the -R
ports stay bound on the server. If the session cannot be resumed (the
server restarted, or the time passed), the client logs in again as a new
session and reconnects with exponential backoff and jitter, up to
--reconnect-max between attempts; -L and -D keep listening, and new
connections wait up to --connect-wait for the link; -R forwards are bound
again on the server. SIGHUP skips the current wait. SIGINT or SIGTERM stops
listening, waits up to --drain-timeout for live connections, and exits 0.

Every flag can also be set by BRAID_<FLAG> (upper case, '-' as '_'; a
repeated flag takes a comma-separated list: BRAID_LOCAL=8080:db:5432,9090:web:80)
or in --config (TOML; keys are flag names); command line > variable > file.`

func newClientCmd() *cobra.Command {
	var (
		c                                          common
		server, fingerprint, knownHosts, tokenFile string
		tlsCert, tlsKey, compress, statusMode      string
		locals, remotes, dynamics                  []string
		keepAlive, kaTime, recMax, wait, drain     time.Duration
		resumeTimeout                              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "client --server HOST:PORT [-L SPEC]... [-R SPEC]... [-D SPEC]... [flags]",
		Short: "run a tunnel client with -L, -R and -D forwards",
		Long:  clientLong,
		Args:  cobra.NoArgs,
	}
	c.register(cmd)
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "the braid server's HOST:PORT (required)")
	f.StringVar(&fingerprint, "fingerprint", "", "pin the server's key: SHA256:... as the server logs it")
	f.StringVar(&knownHosts, "known-hosts", "", "file of trusted server keys (default $XDG_CONFIG_HOME/braid/known_hosts or ~/.config/braid/known_hosts)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the token (else BRAID_TOKEN)")
	f.StringVar(&tlsCert, "tls-cert", "", "client certificate (PEM) for servers that require one")
	f.StringVar(&tlsKey, "tls-key", "", "key (PEM) for --tls-cert")
	f.StringVar(&compress, "compress", "none", "compress the session: zstd or none")
	f.StringArrayVarP(&locals, "local", "L", nil, "[BIND:]PORT:HOST:HOSTPORT: listen here, connect from the server")
	f.StringArrayVarP(&remotes, "remote", "R", nil, "[BIND:]PORT:HOST:HOSTPORT: listen on the server, connect from here")
	f.StringArrayVarP(&dynamics, "dynamic", "D", nil, "[BIND:]PORT: SOCKS5 proxy here, connections leave from the server")
	f.DurationVar(&keepAlive, "keepalive", 10*time.Second, "PING interval")
	f.DurationVar(&kaTime, "keepalive-timeout", 15*time.Second, "redial when a PING is unanswered this long")
	f.DurationVar(&resumeTimeout, "resume-timeout", 60*time.Second, "after the connection broke, try this long to resume the session and its live connections (0: off)")
	f.DurationVar(&recMax, "reconnect-max", 30*time.Second, "longest wait between reconnection attempts")
	f.DurationVar(&wait, "connect-wait", 30*time.Second, "how long a new connection waits for the link")
	f.DurationVar(&drain, "drain-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this long for live connections")
	f.StringVar(&statusMode, "status", "auto", "live status lines on stderr: auto (if a terminal), on or off")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := c.prepare(cmd); err != nil {
			fmt.Fprintln(os.Stderr, "braid client:", err)
			return err
		}
		var enabled bool
		switch statusMode {
		case "auto":
			enabled = status.IsTerminal(os.Stderr)
		case "on":
			enabled = true
		case "off":
		default:
			err := fmt.Errorf("--status %q: use auto, on or off", statusMode)
			fmt.Fprintln(os.Stderr, "braid client:", err)
			return err
		}
		// The status block needs the client's snapshot; the logger needs
		// the status block's writer. Break the cycle with a late-bound func.
		var snap func() tunnel.Snapshot
		st := status.New(os.Stderr, func() tunnel.Snapshot { return snap() }, enabled)
		log, err := c.logger(st.Writer(os.Stderr))
		if err != nil {
			fmt.Fprintln(os.Stderr, "braid client:", err)
			return err
		}
		defer c.profile()()
		if server == "" {
			return fatal(log, errors.New("braid client needs --server HOST:PORT (or server in --config, or BRAID_SERVER)"))
		}
		if _, _, err := net.SplitHostPort(server); err != nil {
			return fatal(log, fmt.Errorf("--server %q: want HOST:PORT", server))
		}
		tok, err := readToken(tokenFile)
		if err != nil {
			return fatal(log, err)
		}
		var fws []tunnel.Forward
		for _, g := range []struct {
			k     tunnel.Kind
			specs []string
		}{{tunnel.Local, locals}, {tunnel.Remote, remotes}, {tunnel.Dynamic, dynamics}} {
			for _, s := range g.specs {
				fw, err := tunnel.ParseForward(g.k, s)
				if err != nil {
					return fatal(log, err)
				}
				fws = append(fws, fw)
			}
		}
		if len(fws) == 0 {
			log.Warn("no forwards given: the client will only keep a session up (add -L, -R or -D)")
		}
		var comp session.Compression
		switch compress {
		case "none", "":
		case "zstd":
			comp = session.CompressionZstd
		default:
			return fatal(log, fmt.Errorf("--compress %q: use zstd or none", compress))
		}
		opts := trust.ClientOptions{
			Addr:        server,
			Fingerprint: fingerprint,
			KnownHosts:  knownHosts,
			OnFirstUse: func(addr, fp string) {
				log.Warn("trusting the server's key on first use; pin it with --fingerprint to be sure", "server", addr, "fingerprint", fp)
			},
		}
		if fingerprint == "" && knownHosts == "" {
			if opts.KnownHosts, err = trust.DefaultKnownHosts(); err != nil {
				return fatal(log, err)
			}
		}
		if tlsCert != "" || tlsKey != "" {
			cert, err := trust.LoadIdentity(tlsCert, tlsKey)
			if err != nil {
				return fatal(log, err)
			}
			opts.ClientCert = &cert
		}
		tlsCfg, err := trust.ClientConfig(opts)
		if err != nil {
			return fatal(log, err)
		}
		dial := func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			raw, err := d.DialContext(ctx, "tcp", server)
			if err != nil {
				return nil, err
			}
			tc := tunnel.NewTLSClient(raw, tlsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("TLS with %s: %w", server, err)
			}
			return tc, nil
		}
		cl, err := tunnel.NewClient(tunnel.ClientConfig{
			Server: server, Dial: dial, IsFatal: isTrustError, Token: tok, Forwards: fws,
			Compression: comp, KeepAlive: keepAlive, KeepAliveTimeout: kaTime,
			ResumeTimeout: resumeFlag(resumeTimeout), ReconnectMax: recMax, ConnectWait: wait, DrainTimeout: drain, Logger: log,
		})
		if err != nil {
			return fatal(log, err)
		}
		snap = cl.Snapshot
		ctx, stop := signalContext()
		defer stop()
		if err := startMetrics(ctx, log, c.metrics, "client", cl.Snapshot); err != nil {
			return fatal(log, err)
		}
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					log.Info("SIGHUP: reconnecting now")
					cl.Redial()
				case <-ctx.Done():
					return
				}
			}
		}()
		stctx, stopStatus := context.WithCancel(ctx)
		statusDone := make(chan struct{})
		go func() { st.Run(stctx, time.Second); close(statusDone) }()
		err = cl.Run(ctx)
		stopStatus()
		<-statusDone
		if err != nil {
			if certRefused(err) {
				err = fmt.Errorf("the server refused this client's TLS certificate (%w); it requires one signed by its --tls-client-ca: pass --tls-cert and --tls-key", err)
			}
			return fatal(log, err)
		}
		log.Info("client stopped")
		return nil
	}
	return cmd
}

// resumeFlag turns --resume-timeout into the tunnel's ResumeTimeout: 0
// (or less) turns resuming off, which the tunnel spells negative.
func resumeFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// isTrustError reports errors that retrying cannot fix: the server's key
// is not the one pinned or recorded, or the server refused this client's
// certificate.
func isTrustError(err error) bool {
	var kc *trust.KeyChangedError
	var pm *trust.PinMismatchError
	return errors.As(err, &kc) || errors.As(err, &pm) || certRefused(err)
}

// certRefused reports a TLS alert from the server about the client's
// certificate (mTLS: none sent, or not signed by the server's
// --tls-client-ca). With TLS 1.3 the alert arrives after the client's
// side of the handshake is done, as the first thing it reads, and the
// session's handshake error carries only its text.
func certRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "remote error: tls:") && strings.Contains(msg, "certificate")
}

func newTokenCmd() *cobra.Command {
	var hash bool
	cmd := &cobra.Command{
		Use:   "token [--hash]",
		Short: "print a new random token, or with --hash the hash of one read from stdin",
		Long: `Print a new random token (256 bits) for BRAID_TOKEN or --token-file:

    export BRAID_TOKEN=$(braid token)

With --hash, read a token from stdin and print the token_hash line for an
--auth-file entry:

    braid token --hash < alice.token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if hash {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
				if err != nil {
					return err
				}
				tok := strings.TrimSpace(string(b))
				if tok == "" {
					err := errors.New("no token on stdin: braid token --hash < FILE")
					fmt.Fprintln(os.Stderr, "braid token:", err)
					return err
				}
				fmt.Println(auth.HashToken(tok))
				return nil
			}
			tok, err := auth.NewToken()
			if err != nil {
				return err
			}
			fmt.Println(tok)
			return nil
		},
	}
	cmd.Flags().BoolVar(&hash, "hash", false, "hash a token read from stdin (for an --auth-file)")
	return cmd
}

func newDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "run a server, a client, a target and traffic on loopback, and show what braid does (< 60 s)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			if err := tunbench.Demo(ctx, exe, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "braid demo:", err)
				return err
			}
			return nil
		},
	}
}

func newBenchCmd() *cobra.Command {
	var (
		o    tunbench.Options
		vias []string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "measure the tunnel against a direct connection on loopback, same run, with ratios",
		Long: `Measure braid server and client (child processes, TLS on) against direct
loopback TCP, in interleaved rounds: one connection's throughput, 16
connections, 64-byte request/response latency (alone and beside a bulk
download), connections per second, and the memory of 1 000 idle
connections. Prints a table of medians, ratios and goals.

Other tunnels can be measured in the same rounds: start them yourself,
forwarding to a fixed --target, and name each with --via, e.g.

    ssh -N -L 19102:127.0.0.1:19101 localhost &
    braid bench --target 127.0.0.1:19101 --via ssh=127.0.0.1:19102,$!,SSHD_PID

The PIDs after the address (optional) are the tunnel's processes; the sum
of their memory is reported. The table then shows braid/direct and braid
divided by the first --via.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range vias {
				v, err := tunbench.ParseVia(s)
				if err != nil {
					fmt.Fprintln(os.Stderr, "braid bench:", err)
					return err
				}
				o.Via = append(o.Via, v)
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			o.Binary, o.Out = exe, os.Stdout
			if _, err := tunbench.Bench(ctx, o); err != nil {
				fmt.Fprintln(os.Stderr, "braid bench:", err)
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Rounds, "rounds", 3, "interleaved rounds (medians are reported)")
	f.Int64Var(&o.Bytes, "bytes", 0, "bytes for the one-connection transfer (default 1 GiB, or 32 MiB with --quick)")
	f.BoolVar(&o.Quick, "quick", false, "small sizes, for a fast check")
	f.BoolVar(&o.JSON, "json", false, "print one JSON document instead of a table")
	f.StringVar(&o.Target, "target", "127.0.0.1:0", "HOST:PORT for the bench's target server (a fixed port for --via tunnels to forward to)")
	f.StringArrayVar(&vias, "via", nil, "NAME=HOST:PORT[,PID...]: also measure this running tunnel to --target (repeatable)")
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print braid's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok {
				if bi.Main.Version != "" {
					v = bi.Main.Version
				}
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						v += " " + s.Value[:12]
					}
				}
			}
			fmt.Printf("braid %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
