package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
	"google.golang.org/protobuf/encoding/protowire"
)

// frameBytes encodes f with its length prefix.
func frameBytes(f frame.Frame) []byte { return f.Append(nil) }

// helloBytes encodes a HELLO frame with settings h.
func helloBytes(h frame.Settings) []byte {
	f := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: h}
	return f.Append(nil)
}

// TestHandshakeRejectsOtherProtocols: a peer that speaks anything but
// braid, or nothing, gets ErrHandshake within the handshake timeout, from
// both Client and Server.
func TestHandshakeRejectsOtherProtocols(t *testing.T) {
	const timeout = 300 * time.Millisecond
	yamux := func(typ byte) []byte {
		b := make([]byte, 12) // version 0, type, flags, stream id, length
		b[1] = typ
		binary.BigEndian.PutUint16(b[2:], 1) // SYN
		binary.BigEndian.PutUint32(b[4:], 1)
		return b
	}
	badHello := func(edit func(*frame.Settings)) []byte {
		h := fakeHello()
		edit(&h)
		return helloBytes(h)
	}
	tooManyOffers := helloBytes(fakeHello())
	{
		// A HELLO with 17 compression offers, one over the limit.
		h := fakeHello()
		h.Compression = make([]frame.Compression, frame.MaxCompressionOffers+1)
		tooManyOffers = helloBytes(h)
	}
	cases := []struct {
		name string
		send []byte // nil: silence
		shut bool   // close the connection after sending
	}{
		{name: "Silence"},
		{name: "HTTPRequest", send: []byte("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n")},
		{name: "HTTPRequestShort", send: []byte("GET / HTTP/1.1\r\n\r\n")},
		{name: "HTTP2Preface", send: []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")},
		{name: "TLSClientHello", send: []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}},
		{name: "YamuxData", send: yamux(0)},
		{name: "YamuxWindowUpdate", send: yamux(1)},
		{name: "YamuxPing", send: yamux(2)},
		{name: "YamuxGoAway", send: yamux(3)},
		{name: "Zeros", send: make([]byte, 64)},
		{name: "Random", send: pattern(42, 4096)},
		{name: "ClosedAtOnce", shut: true},
		{name: "TruncatedHello", send: helloBytes(fakeHello())[:10], shut: true},
		{name: "PingFirst", send: (&frame.Frame{Type: frame.Ping, Opaque: 1}).Append(nil)},
		{name: "SYNFirst", send: frameBytes(syn(1, []byte("hi"), 0))},
		{name: "HugeLengthPrefix", send: protowire.AppendVarint(nil, 100<<20)},
		{name: "WrongMagic", send: badHello(func(h *frame.Settings) { h.Magic = []byte("yamux") })},
		{name: "NoMagic", send: badHello(func(h *frame.Settings) { h.Magic = nil })},
		{name: "WrongVersion", send: badHello(func(h *frame.Settings) { h.Version = 2 })},
		{name: "VersionZero", send: badHello(func(h *frame.Settings) { h.Version = 0 })},
		{name: "MaxFrameSizeZero", send: badHello(func(h *frame.Settings) { h.MaxFrameSize = 0 })},
		{name: "MaxFrameSizeTooSmall", send: badHello(func(h *frame.Settings) { h.MaxFrameSize = frame.MinMaxFrameSize - 1 })},
		{name: "MaxFrameSizeTooLarge", send: badHello(func(h *frame.Settings) { h.MaxFrameSize = frame.MaxMaxFrameSize + 1 })},
		{name: "InitialWindowTooSmall", send: badHello(func(h *frame.Settings) { h.InitialWindow = 1023 })},
		{name: "InitialWindowTooLarge", send: badHello(func(h *frame.Settings) { h.InitialWindow = 1 << 31 })},
		{name: "SessionWindowZero", send: badHello(func(h *frame.Settings) { h.SessionWindow = 0 })},
		{name: "TooManyCompressionOffers", send: tooManyOffers},
	}
	for _, tc := range cases {
		for _, client := range []bool{true, false} {
			name := tc.name + "/Server"
			if client {
				name = tc.name + "/Client"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				mine, peer := tcpPair(t)
				defer peer.Close()
				go io.Copy(io.Discard, peer) // take the session's HELLO
				if tc.send != nil {
					if _, err := peer.Write(tc.send); err != nil {
						t.Fatal(err)
					}
				}
				if tc.shut {
					peer.(*net.TCPConn).CloseWrite()
				}
				start := time.Now()
				var s *Session
				var err error
				cfg := &Config{HandshakeTimeout: timeout}
				if client {
					s, err = Client(mine, cfg)
				} else {
					s, err = Server(mine, cfg)
				}
				took := time.Since(start)
				if err == nil {
					s.Close()
					t.Fatal("handshake succeeded")
				}
				if !errors.Is(err, ErrHandshake) {
					t.Fatalf("err = %v, want ErrHandshake", err)
				}
				if took > timeout+2*time.Second {
					t.Fatalf("handshake failed after %v, want within %v", took, timeout)
				}
				if tc.name == "Silence" && took < timeout-10*time.Millisecond {
					t.Fatalf("silent peer dropped after %v, before the %v handshake timeout", took, timeout)
				}
				// The connection was closed.
				mine.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := mine.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("read on the conn after a failed handshake: %v, want net.ErrClosed", err)
				}
			})
		}
	}
}

// TestHandshakeEarlyFrames: a HELLO followed at once by other frames in
// the same write (as SPEC.md §4.1 allows) is fine, and a client's stream
// opened before the server's HELLO arrives is delivered.
func TestHandshakeEarlyFrames(t *testing.T) {
	mine, theirs := tcpPair(t)
	defer mine.Close()
	b := helloBytes(fakeHello())
	b = append(b, frameBytes(syn(1, []byte("early"), frame.FlagFIN))...)
	if _, err := mine.Write(b); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, mine)
	s, err := Server(theirs, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := accept(t, s)
	st.SetReadDeadline(time.Now().Add(failAfter))
	got, err := io.ReadAll(st)
	if err != nil || string(got) != "early" {
		t.Fatalf("read %q, %v; want \"early\", nil", got, err)
	}
}

// hostileCase is one protocol violation a peer can commit after the
// handshake, and the error code the session must end with.
type hostileCase struct {
	name       string
	fakeServer bool // the fake peer plays the server; by default the client
	cfg        *Config
	hello      *frame.Settings // the fake peer's HELLO; nil means fakeHello()
	attack     func(t *testing.T, fp *fakePeer)
	code       frame.ErrorCode
}

func hostileCases() []hostileCase {
	maxWindow := uint32(1<<31 - 1)
	w := func(fp *fakePeer, fs ...frame.Frame) { fp.write(fs...) } // errors: the session may already be gone
	raw := func(fp *fakePeer, b []byte) { fp.writeRaw(b) }
	return append([]hostileCase{
		{
			name: "DataBeyondStreamWindow",
			cfg:  &Config{InitialStreamWindow: 16 << 10, MaxStreamWindow: 16 << 10},
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, syn(3, make([]byte, 10<<10), 0), data(3, make([]byte, 6<<10), 0)) // exactly the window: fine
				fp.ping(100)
				w(fp, data(3, []byte{1}, 0))
			},
			code: frame.FlowControlError,
		},
		{
			name: "DataBeyondSessionWindow",
			cfg:  &Config{InitialStreamWindow: 16 << 10, MaxStreamWindow: 16 << 10, MaxSessionWindow: 32 << 10},
			attack: func(t *testing.T, fp *fakePeer) {
				// 4 KiB on the completed stream, then 3 × 12 KiB: each
				// stream within its window, the session not.
				w(fp, syn(3, make([]byte, 12<<10), 0), syn(5, make([]byte, 12<<10), 0))
				fp.ping(100)
				w(fp, syn(7, make([]byte, 12<<10), 0))
			},
			code: frame.FlowControlError,
		},
		{
			name:   "SYNReusesID",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(1, []byte("again"), 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "SYNReusesOpenID",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(3, nil, 0), syn(3, nil, 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "SYNLowerID",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(7, nil, 0), syn(5, nil, 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "SYNWrongParity",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(4, nil, 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:       "SYNWrongParityFromServer",
			fakeServer: true,
			attack:     func(t *testing.T, fp *fakePeer) { w(fp, syn(3, nil, 0)) },
			code:       frame.ProtocolError,
		},
		{
			name:   "SYNIDAbove2^31-1",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(1<<31+1, nil, 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "DataForIdlePeerStream",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, data(9, []byte("x"), 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "DataForIdleOwnStream",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, data(2, []byte("x"), 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "DataOnStream0",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, data(0, []byte("x"), 0)) },
			code:   frame.ProtocolError,
		},
		{
			name:   "EmptyFrame",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, []byte{0}) },
			code:   frame.ProtocolError,
		},
		{
			name: "WindowUpdateForIdleStream",
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, frame.Frame{Type: frame.WindowUpdate, StreamID: 9, WindowDelta: 100})
			},
			code: frame.ProtocolError,
		},
		{
			name: "ResetForIdleStream",
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, frame.Frame{Type: frame.Reset, StreamID: 9, ErrorCode: frame.Cancel})
			},
			code: frame.ProtocolError,
		},
		{
			name:   "ResetOnStream0",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, frame.Frame{Type: frame.Reset, ErrorCode: frame.Cancel}) },
			code:   frame.ProtocolError,
		},
		{
			name:   "WindowUpdateZeroSession",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, frame.Frame{Type: frame.WindowUpdate}) },
			code:   frame.ProtocolError,
		},
		{
			name: "WindowUpdateZeroStream",
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, syn(3, nil, 0), frame.Frame{Type: frame.WindowUpdate, StreamID: 3})
			},
			code: frame.ProtocolError,
		},
		{
			name: "SessionWindowOverflow",
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, frame.Frame{Type: frame.WindowUpdate, WindowDelta: maxWindow})
			},
			code: frame.FlowControlError,
		},
		{
			name: "StreamWindowOverflow",
			attack: func(t *testing.T, fp *fakePeer) {
				// Credit 256 KiB + (2^31-1-256 KiB) is exactly the maximum:
				// fine. One more byte overflows.
				w(fp, syn(3, nil, 0), frame.Frame{Type: frame.WindowUpdate, StreamID: 3, WindowDelta: maxWindow - 256<<10})
				fp.ping(100)
				w(fp, frame.Frame{Type: frame.WindowUpdate, StreamID: 3, WindowDelta: 1})
			},
			code: frame.FlowControlError,
		},
		{
			name: "FrameTooLarge",
			cfg:  &Config{MaxFrameSize: 16 << 10},
			attack: func(t *testing.T, fp *fakePeer) {
				b := protowire.AppendVarint(nil, 16<<10+1)
				raw(fp, append(b, make([]byte, 100)...))
			},
			code: frame.FrameSizeError,
		},
		{
			name: "FrameTooLargeData",
			cfg:  &Config{MaxFrameSize: 16 << 10},
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, syn(3, make([]byte, 16<<10), 0))
			},
			code: frame.FrameSizeError,
		},
		{
			name:   "LengthPrefixTooLong",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) },
			code:   frame.ProtocolError,
		},
		{
			name:   "GarbageBody",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, []byte{5, 0xff, 0xff, 0xff, 0xff, 0xff}) },
			code:   frame.ProtocolError,
		},
		{
			name: "GarbageAfterValidFrames",
			attack: func(t *testing.T, fp *fakePeer) {
				b := frameBytes(syn(3, []byte("ok"), 0))
				b = append(b, 3, 0x0a, 0x10, 0xff) // field 1 LEN with 16 bytes, only 2 follow
				raw(fp, b)
			},
			code: frame.ProtocolError,
		},
		{
			name: "InvalidUTF8Debug",
			attack: func(t *testing.T, fp *fakePeer) {
				w(fp, frame.Frame{Type: frame.GoAway, Debug: []byte{0xff, 0xfe}})
			},
			code: frame.ProtocolError,
		},
		{
			name:   "HelloAfterHandshake",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, helloBytes(fakeHello())) },
			code:   frame.ProtocolError,
		},
		{
			name:   "CompressedWithoutNegotiation",
			attack: func(t *testing.T, fp *fakePeer) { w(fp, syn(3, []byte("zzz"), frame.FlagCompressed)) },
			code:   frame.CompressionError,
		},
	}, compressionHostileCases()...)
}

// TestHostilePeer: each protocol violation ends the session with a
// *ProtocolError of the right code (seen through Session.Err), the peer
// gets a GOAWAY with that code, data of a stream that completed before the
// violation can still be read in full, and a session running alongside
// is unaffected.
func TestHostilePeer(t *testing.T) {
	// A bystander session in the same process, echoing.
	bc, bs := sessionPair(t, nil, nil)
	go func() {
		for {
			st, err := bs.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() { io.Copy(st, st); st.Close() }()
		}
	}()
	bst := open(t, bc)
	echo := func(t *testing.T, i int) {
		t.Helper()
		msg := pattern(uint64(i), 1000)
		if _, err := bst.Write(msg); err != nil {
			t.Fatalf("bystander write: %v", err)
		}
		if got := readN(t, bst, len(msg)); !bytes.Equal(got, msg) {
			t.Fatal("bystander echo mismatch")
		}
	}

	for i, tc := range hostileCases() {
		client := !tc.fakeServer
		t.Run(tc.name, func(t *testing.T) {
			fp := newFakePeer(t, tc.cfg, fakeOpts{client: client, hello: tc.hello})
			// A stream that completes (SYN, data, FIN) before the attack.
			done := uint32(1)
			if !client {
				done = 2
			}
			completed := pattern(uint64(1000+i), 4<<10)
			if err := fp.write(syn(done, completed, frame.FlagFIN)); err != nil {
				t.Fatal(err)
			}
			tc.attack(t, fp)

			waitClosed(t, fp.sess, "session under attack")
			err := fp.sess.Err()
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Err() = %v, want net.ErrClosed", err)
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Err() = %v, want a *ProtocolError", err)
			}
			if pe.Code != tc.code || pe.Remote {
				t.Fatalf("Err() = %v (code %v, remote %v), want local %v", err, pe.Code, pe.Remote, tc.code)
			}
			if g := fp.waitGoAway(); g.ErrorCode != tc.code {
				t.Fatalf("peer got GOAWAY %v, want code %v", &g, tc.code)
			}
			if got := fp.sess.Stats().ProtocolErrors; got != 1 {
				t.Fatalf("Stats().ProtocolErrors = %d, want 1", got)
			}

			// The completed stream's data is all there, then EOF.
			st := accept(t, fp.sess)
			if st.ID() != done {
				t.Fatalf("accepted stream %d first, want %d", st.ID(), done)
			}
			st.SetReadDeadline(time.Now().Add(failAfter))
			got, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(got, completed) {
				t.Fatalf("completed stream: read %d bytes, err %v; want %d bytes, nil", len(got), err, len(completed))
			}
			// Calls on the dead session fail cleanly.
			if _, err := fp.sess.OpenStream(context.Background()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("OpenStream on the failed session = %v, want net.ErrClosed", err)
			}
		})
		echo(t, i)
	}
}

// TestHostileRandomFrames throws random, mostly valid frames at a session
// and checks it never panics or hangs: it either survives (and still
// answers a PING) or ends with a *ProtocolError and a GOAWAY.
func TestHostileRandomFrames(t *testing.T) {
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	for seed := range rounds {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		fp := newFakePeer(t, &Config{InitialStreamWindow: 4096, MaxStreamWindow: 4096, MaxSessionWindow: 16384}, fakeOpts{client: true})
		var b []byte
		for range 1 + r.IntN(20) {
			f := frame.Frame{
				Type:     frame.Type(r.IntN(7)),
				StreamID: uint32(r.IntN(8)),
				Flags:    frame.Flags(r.IntN(16)),
			}
			switch f.Type {
			case frame.Data:
				f.Payload = make([]byte, r.IntN(3000))
			case frame.WindowUpdate:
				f.WindowDelta = uint32(r.IntN(5000))
			case frame.Reset, frame.GoAway:
				f.ErrorCode = frame.ErrorCode(r.IntN(3))
			case frame.Ping:
				f.Flags &= frame.FlagACK
				f.Opaque = r.Uint64()
			case frame.Hello:
				f.HasSettings = true
				f.Settings = fakeHello()
			}
			b = f.Append(b)
		}
		// Either the session is still up and answers a PING sent after
		// the frames, or it ended with a protocol error it reported to
		// the peer.
		b = (&frame.Frame{Type: frame.Ping, Opaque: 1 << 60}).Append(b)
		fp.writeRaw(b)
		if fp.waitAckOrEnd(1 << 60) {
			if fp.sess.IsClosed() {
				t.Fatalf("seed %d: session answered the PING but closed: %v", seed, fp.sess.Err())
			}
			fp.sess.Close()
			continue
		}
		waitClosed(t, fp.sess, "after random frames")
		err := fp.sess.Err()
		var pe *ProtocolError
		if errors.As(err, &pe) {
			if pe.Remote {
				continue // the fake sent GOAWAY with an error code
			}
			if g := fp.waitGoAway(); g.ErrorCode != pe.Code {
				t.Fatalf("seed %d: GOAWAY %v, want code %v", seed, &g, pe.Code)
			}
			continue
		}
		if !errors.Is(err, ErrGoAway) {
			t.Fatalf("seed %d: session ended with %v", seed, err)
		}
	}
}

// TestTolerated: frames the protocol says to ignore or to answer at the
// stream level do not end the session.
func TestTolerated(t *testing.T) {
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	// Open stream 1, FIN it, and send more data: RESET STREAM_CLOSED, the
	// session lives.
	fp.write(syn(1, []byte("a"), frame.FlagFIN), data(1, []byte("after fin"), 0))
	fp.waitFor("RESET STREAM_CLOSED", func() bool { return fp.resets[frame.StreamClosed] == 1 })
	// Stream 3 opened and reset by the peer: later frames for it are in
	// flight by the rules, and ignored.
	fp.write(syn(3, nil, 0), frame.Frame{Type: frame.Reset, StreamID: 3, ErrorCode: frame.Cancel})
	fp.write(
		data(3, []byte("late data"), 0),
		frame.Frame{Type: frame.WindowUpdate, StreamID: 3, WindowDelta: 10},
		frame.Frame{Type: frame.Reset, StreamID: 3, ErrorCode: frame.Cancel},
		// An unknown frame type, undefined flag bits, an ACK for no PING,
		// and fields a type does not use.
		frame.Frame{Type: 42, StreamID: 99, Payload: []byte("future")},
		frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: 12345},
		frame.Frame{Type: frame.Ping, Flags: 0x80, Opaque: 777, StreamID: 5, WindowDelta: 9},
		frame.Frame{Type: frame.WindowUpdate, WindowDelta: 1000, Flags: 0xf0},
		syn(5, []byte("flags"), 0x100),
	)
	fp.ping(778)
	fp.waitFor("PING 777 answered", func() bool {
		_, ok := fp.findFrameLocked(func(f *frame.Frame) bool {
			return f.Type == frame.Ping && f.Opaque == 777 && f.Flags.Has(frame.FlagACK)
		})
		return ok
	})
	if fp.sess.IsClosed() {
		t.Fatalf("session closed: %v", fp.sess.Err())
	}
	// Streams 1 (reset after its data) and 3 are gone; 5 works.
	st := accept(t, fp.sess)
	for st.ID() != 5 {
		st = accept(t, fp.sess)
	}
	if got := readN(t, st, 5); string(got) != "flags" {
		t.Fatalf("stream 5 read %q", got)
	}
	if _, err := st.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	fp.waitFor("data on stream 5", func() bool { return fp.data[5] == 4 })
	if got := fp.sess.Stats().ProtocolErrors; got != 0 {
		t.Fatalf("ProtocolErrors = %d, want 0", got)
	}
}

// TestPeerGoAwayWithError: a GOAWAY with an error code from the peer ends
// the session at once with a remote *ProtocolError.
func TestPeerGoAwayWithError(t *testing.T) {
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	fp.write(syn(1, nil, 0))
	st := accept(t, fp.sess)
	fp.write(frame.Frame{Type: frame.GoAway, ErrorCode: frame.InternalError, Debug: []byte("bye")})
	waitClosed(t, fp.sess, "after GOAWAY INTERNAL_ERROR")
	var pe *ProtocolError
	if err := fp.sess.Err(); !errors.As(err, &pe) || pe.Code != frame.InternalError || !pe.Remote || pe.Reason != "bye" {
		t.Fatalf("Err() = %v, want remote INTERNAL_ERROR \"bye\"", err)
	}
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read = %v, want net.ErrClosed", err)
	}
}

// TestDiscardedDataIsCredited: payload the session discards (for a closed
// stream, a refused SYN, or a stream this side closed) is credited back
// with session WINDOW_UPDATEs (SPEC.md §6.3), so a peer that stays within
// its credit is never stalled or cut off.
func TestDiscardedDataIsCredited(t *testing.T) {
	const window = 4096
	fp := newFakePeer(t, &Config{MaxSessionWindow: window, InitialStreamWindow: window, MaxIncomingStreams: 2}, fakeOpts{client: true})
	// Stream 1: open, then reset by the peer: closed.
	fp.write(syn(1, nil, 0), frame.Frame{Type: frame.Reset, StreamID: 1, ErrorCode: frame.Cancel})
	// Stream 3: accepted and closed by the application: its data is
	// discarded from then on.
	fp.write(syn(3, nil, 0))
	st := accept(t, fp.sess)
	for st.ID() != 3 {
		// Stream 1, if it was still in the accept backlog: the peer
		// reset it, but it counts against MaxIncomingStreams until the
		// application lets go of it (rapid reset), which it does here.
		st.Close()
		st = accept(t, fp.sess)
	}
	st.Close()
	// Stream 5 stays open, so SYNs beyond MaxIncomingStreams are refused.
	fp.write(syn(5, nil, 0))

	sent, sent3 := uint64(0), uint64(0) // payload bytes sent: all, on stream 3
	chunk := make([]byte, 3000)
	next := uint32(7)
	for i := range 12 { // 36 000 bytes through a 4 KiB session window
		// Stay within credit: wait until the session has granted back
		// enough for this chunk (and, on stream 3, the stream's too).
		fp.waitFor("session credit", func() bool { return window+fp.credit[0]-sent >= uint64(len(chunk)) })
		switch i % 3 {
		case 0:
			fp.write(data(1, chunk, 0)) // closed by RESET
		case 1:
			fp.waitFor("stream 3 credit", func() bool { return window+fp.credit[3]-sent3 >= uint64(len(chunk)) })
			fp.write(data(3, chunk, 0)) // closed by the application
			sent3 += uint64(len(chunk))
		case 2:
			fp.write(syn(next, chunk, 0)) // refused
			next += 2
		}
		sent += uint64(len(chunk))
	}
	fp.ping(99)
	if fp.sess.IsClosed() {
		t.Fatalf("session closed: %v", fp.sess.Err())
	}
	if got := fp.numResets(frame.RefusedStream); got != 4 {
		t.Fatalf("%d refusals, want 4", got)
	}
}
