package interop_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Results of a case for one muxer.
const (
	resPass  = "pass"
	resFail  = "FAIL"
	resFlaky = "flaky" // expected: fails in some runs, passes in others
	resNA    = "n/a"   // the muxer lacks a feature the case needs
)

// knownFailure is a case a muxer is expected to fail, and why.
type knownFailure struct {
	why string
	// flaky: the failure depends on timing; either result is accepted.
	flaky bool
}

// knownFailures lists, per muxer, the cases it is expected to FAIL, with
// the diagnosis. TestSuite fails if a muxer fails a case not listed here,
// or passes one that is (flaky entries aside): keep this table, and
// README.md (TestREADME checks it), in step with reality. braid is meant
// to pass every case: an entry for braid is a bug in package session
// waiting for its fix.
var knownFailures = map[string]map[string]knownFailure{
	"braid": {},
	"yamux": {
		"deadline_error_is": {why: "deadline errors are *yamux.NetError, not os.ErrDeadlineExceeded (yamux#156); " +
			"a Write past its deadline succeeds while the window has room"},
		"close_local": {why: "Stream.Close is only a half-close: it does not unblock this side's Read, " +
			"and a later Read still waits for the peer"},
		"accept_backlog": {why: "Open waits once AcceptBacklog opens are unacknowledged, and cannot be cancelled: " +
			"when room appears, Opens whose callers gave up still open their streams (if the peer never accepts, " +
			"StreamOpenTimeout, 75 s, closes the whole session)"},
		"conn_dies_not_eof":    {why: "streams of a dead session read io.EOF: a cut connection looks like a clean end of stream"},
		"nettest_WriteTimeout": {why: "a Write past its deadline succeeds while the window has room (the deadline is checked only when blocking)"},
		"nettest_PastTimeout":  {why: "a Write past its deadline succeeds while the window has room"},
		"nettest_CloseTimeout": {why: "hangs: Close (a half-close) does not unblock a concurrent Read"},
	},
	// braid-yamux keeps yamux's Close on purpose: it is a half-close
	// (braid's CloseWrite), so yamux programs that Close and then read
	// the reply keep working. Everything else is braid's behaviour.
	"braid-yamux": {
		"close_local": {why: "on purpose, as in yamux: Stream.Close is yamux's half-close (braid's CloseWrite), " +
			"so it does not unblock this side's Read, and a later Read still waits for the peer"},
		"nettest_CloseTimeout": {why: "on purpose, as in yamux: Close (a half-close) does not unblock a concurrent Read"},
	},
	"smux": {
		"half_close": {why: "after CloseWrite, the peer's FIN removes the stream with its unread data " +
			"(tryHalfCloseCleanup → streamClosed → recycleTokens): a reply that arrived before the FIN is lost and Read returns io.EOF"},
		"acceptor_writes_first": {flaky: true, why: "data the acceptor writes at once can be lost: OpenStream sends SYN " +
			"before it registers the stream, and the receive loop drops data for a stream it does not know yet"},
		"deadline_error_is": {why: "deadline errors are smux's own timeoutError, not os.ErrDeadlineExceeded"},
		"accept_backlog": {why: "never refuses: with its fixed backlog of 1 024 full, the receive loop blocks on the " +
			"accept queue, stalling every stream of the session until Accept is called"},
		"session_close":     {why: "the peer of a closed session never ends: after the connection's EOF its CloseChan stays open"},
		"conn_dies":         {why: "a Write blocked on flow control stays blocked after the connection dies, and neither side's CloseChan closes"},
		"conn_dies_not_eof": {why: "a stream of the side that sees the connection's EOF reads io.EOF, like a clean end of stream"},
		"nettest_RacyWrite": {flaky: true, why: "data race: a Write that times out returns while the send loop " +
			"still copies the caller's buffer (session.go sendLoop vs. the caller reusing it), which -race reports; " +
			"without -race it fails in some runs: a timed-out Write's bytes may still be sent, so the peer reads more " +
			"than the writer was told went out (\"peer consumed more than sent\", as in PastTimeout)"},
		"nettest_PastTimeout": {flaky: true, why: "a Write past its deadline reports a timeout yet may send its bytes " +
			"(writeFrameInternal picks at random between queueing the frame and the expired deadline)"},
		"nettest_ConcurrentMethods": {flaky: true, why: "sometimes hangs after concurrent Read/Write/SetDeadline calls: " +
			"the resync round trip never completes (timed-out Writes that were sent anyway, as in PastTimeout)"},
	},
}

// childEnv, set to 1, makes TestSuite run the selected cases in process
// instead of spawning a child per case. Use it to debug one case:
//
//	BRAID_INTEROP_CHILD=1 go test -run 'TestSuite/braid/echo$' -v ./interop_test
const childEnv = "BRAID_INTEROP_CHILD"

// ranMarker is printed by a child once the selected case has started, so
// a -test.run pattern that matches nothing is not taken for a pass.
const ranMarker = "braid-interop: case started"

func markRan() { fmt.Println(ranMarker) }

var updateREADME = flag.Bool("update-readme", false, "rewrite the results table in README.md from knownFailures")

// TestSuite runs every case against every muxer, each in a child process
// of this test binary so that a case that hangs, panics or crashes the
// muxer is recorded as a failure of that case alone. It prints the
// results table and fails on any difference from the expected one.
func TestSuite(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		for _, m := range muxers {
			t.Run(m.name, func(t *testing.T) {
				for _, c := range suiteCases {
					t.Run(c.name, func(t *testing.T) {
						if missing := missingFeatures(m, c); missing != "" {
							t.Skipf("%s lacks %s", m.name, missing)
						}
						if c.nettest == "" {
							markRan()
						} else if !strings.HasSuffix(strings.TrimSuffix(flag.Lookup("test.run").Value.String(), "$"), c.nettest) {
							// nettest.TestConn would run all 11 subtests.
							t.Skipf("select one subtest: -run 'TestSuite/%s/%s/%s'", m.name, c.name, c.nettest)
						}
						c.run(t, m)
					})
				}
			})
		}
		return
	}
	var mu sync.Mutex
	got := map[string]map[string]string{}
	t.Cleanup(func() { // after every subtest
		mu.Lock()
		defer mu.Unlock()
		t.Logf("results:\n%s", renderTable(func(m *muxer, c suiteCase) string { return got[m.name][c.name] }))
	})
	for _, m := range muxers {
		got[m.name] = map[string]string{}
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range suiteCases {
				t.Run(c.name, func(t *testing.T) {
					res, out := resNA, ""
					want := expectedResult(m, c)
					if missingFeatures(m, c) == "" {
						t.Parallel()
						res, out = runChild(m, c)
						// Other muxers' rare timing bugs must not make
						// this test flaky: an unexpected result is retried
						// (twice) before it counts. braid gets no retries.
						for try := 0; try < 2 && m.name != "braid" && res != want && want != resFlaky; try++ {
							t.Logf("%s on try %d, expected %s; retrying:\n%s", res, try+1, want, tail(out, 3000))
							res, out = runChild(m, c)
						}
					}
					mu.Lock()
					got[m.name][c.name] = res
					mu.Unlock()
					switch {
					case res == resFail && (want == resFail || want == resFlaky):
						t.Logf("known failure: %s\n%s", knownFailures[m.name][c.name].why, tail(out, 3000))
					case want == resFlaky:
						t.Logf("known flaky failure did not happen this time: %s", knownFailures[m.name][c.name].why)
					case res != want:
						t.Errorf("%s/%s: %s, expected %s (update knownFailures and README.md if this is the new truth)\n%s",
							m.name, c.name, res, want, tail(out, 12000))
					}
				})
			}
		})
	}
}

func missingFeatures(m *muxer, c suiteCase) string {
	var missing []string
	for _, f := range c.needs {
		if !m.has(f) {
			missing = append(missing, string(f))
		}
	}
	return strings.Join(missing, ", ")
}

func expectedResult(m *muxer, c suiteCase) string {
	k, known := knownFailures[m.name][c.name]
	switch {
	case missingFeatures(m, c) != "":
		return resNA
	case !known:
		return resPass
	case k.flaky:
		return resFlaky
	}
	return resFail
}

// runChild runs one case of one muxer in a child process and returns
// its result and output.
func runChild(m *muxer, c suiteCase) (string, string) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	pattern := fmt.Sprintf("^TestSuite$/^%s$/^%s$", regexp.QuoteMeta(m.name), regexp.QuoteMeta(c.name))
	if c.nettest != "" {
		pattern += "/^" + c.nettest + "$"
	}
	return runChildProcess(pattern, timeout)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// renderTable renders the results as the markdown table README.md holds,
// with each known failure's diagnosis as a numbered note.
func renderTable(result func(*muxer, suiteCase) string) string {
	var b strings.Builder
	b.WriteString("| case | what it checks |")
	for _, m := range muxers {
		b.WriteString(" " + m.name + " |")
	}
	b.WriteString("\n|---|---|")
	for range muxers {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	var notes []string
	for _, c := range suiteCases {
		fmt.Fprintf(&b, "| %s | %s |", c.name, c.what)
		for _, m := range muxers {
			res := result(m, c)
			if res == "" {
				res = "?"
			}
			if k, ok := knownFailures[m.name][c.name]; ok && res != resPass && res != resNA {
				notes = append(notes, fmt.Sprintf("%s, %s: %s", m.name, c.name, k.why))
				res = fmt.Sprintf("%s [%d]", res, len(notes))
			}
			if res == resNA {
				res += " (no " + missingFeatures(m, c) + ")"
			}
			b.WriteString(" " + res + " |")
		}
		b.WriteString("\n")
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for i, n := range notes {
			fmt.Fprintf(&b, "%d. %s\n", i+1, n)
		}
	}
	return b.String()
}

const (
	readmeBegin = "<!-- results:begin (generated by TestREADME -update-readme; edit knownFailures) -->\n"
	readmeEnd   = "<!-- results:end -->\n"
)

// TestREADME checks that README.md's results table is the expected table
// (which TestSuite checks against reality). Run with -update-readme to
// rewrite it.
func TestREADME(t *testing.T) {
	for name, cases := range knownFailures {
		if muxerByName(name) == nil {
			t.Errorf("knownFailures names unknown muxer %q", name)
		}
		for c := range cases {
			if !slices.ContainsFunc(suiteCases, func(sc suiteCase) bool { return sc.name == c }) {
				t.Errorf("knownFailures[%q] names unknown case %q", name, c)
			}
		}
	}
	for c, k := range knownFailures["braid"] {
		t.Logf("braid bug, to be fixed in package session: %s: %s", c, k.why)
	}
	want := renderTable(expectedResult)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(readme, []byte(readmeBegin))
	j := bytes.Index(readme, []byte(readmeEnd))
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", readmeBegin, readmeEnd)
	}
	have := string(readme[i+len(readmeBegin) : j])
	if have == want {
		return
	}
	if !*updateREADME {
		t.Fatalf("README.md results table is stale; run go test ./interop_test -run TestREADME -update-readme\nwant:\n%s", want)
	}
	var nb bytes.Buffer
	nb.Write(readme[:i+len(readmeBegin)])
	nb.WriteString(want)
	nb.Write(readme[j:])
	if err := os.WriteFile("README.md", nb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
