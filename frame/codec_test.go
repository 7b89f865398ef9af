package frame_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/braidmux/braid/frame"
	braidpb "github.com/braidmux/braid/proto"
)

// codecCase is one frame of every kind the protocol defines, with its
// wire encoding (length prefix and body) where it is short enough to pin.
type codecCase struct {
	name    string
	f       frame.Frame
	wireHex string // "" = not pinned; proto.Marshal equality still checked
}

// fullSettings is a HELLO body with every field set.
var fullSettings = frame.Settings{
	Magic:              []byte(frame.Magic),
	Version:            frame.Version,
	InitialWindow:      256 << 10,
	MaxFrameSize:       16 << 10,
	MaxIncomingStreams: 1000,
	Compression:        []frame.Compression{frame.CompressionZstd, frame.CompressionNone},
	SessionWindow:      16 << 20,
	AcceptBacklog:      256,
	Role:               frame.RoleClient,
	Nonce:              []byte("0123456789abcdef"),
}

// resumeSettings is fullSettings plus the resumption fields a server sends
// when it accepts resumption.
var resumeSettings = func() frame.Settings {
	s := fullSettings
	s.Role = frame.RoleServer
	s.ResumeKey = bytes.Repeat([]byte{0x4b}, 32)
	s.ResumeID = []byte("session-id-16-by")
	return s
}()

// Resume bodies for every step, as the handshake uses them.
var (
	sessionID16 = []byte("session-id-16-by")
	nonce16     = []byte("fedcba9876543210")
	mac32       = bytes.Repeat([]byte{0x3c}, 32)
)

func codecCases() []codecCase {
	big := bytes.Repeat([]byte{0xa5}, 300)
	return []codecCase{
		{"DATA", frame.Frame{Type: frame.Data, StreamID: 1, Payload: []byte("hi")}, "06 1001 7a02 6869"},
		{"DATA SYN", frame.Frame{Type: frame.Data, StreamID: 3, Flags: frame.FlagSYN, Payload: []byte("abc")}, "09 1003 1802 7a03 616263"},
		{"DATA FIN empty", frame.Frame{Type: frame.Data, StreamID: 5, Flags: frame.FlagFIN}, "04 1005 1801"},
		{"DATA SYN|FIN|COMPRESSED", frame.Frame{Type: frame.Data, StreamID: 7, Flags: frame.FlagSYN | frame.FlagFIN | frame.FlagCompressed, Payload: []byte{0, 0xff}}, "08 1007 180b 7a02 00ff"},
		{"DATA max stream id 300 bytes", frame.Frame{Type: frame.Data, StreamID: math.MaxUint32, Payload: big}, ""},
		{"DATA all zero", frame.Frame{}, "00"},
		{"HELLO full settings", frame.Frame{Type: frame.Hello, HasSettings: true, Settings: fullSettings},
			"38 0801 4234 0a05627261696" + "4 1001 18808010 20808001 28e807 32020100 3880808008 408002 4801 52103031323334353637383961626364656" + "6"},
		{"HELLO empty settings", frame.Frame{Type: frame.Hello, HasSettings: true}, "04 0801 4200"},
		{"HELLO unknown compression", frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{
			Magic: []byte(frame.Magic), Version: 2, Compression: []frame.Compression{7, 1 << 31, math.MaxUint32}}}, ""},
		{"WINDOW_UPDATE session", frame.Frame{Type: frame.WindowUpdate, WindowDelta: 64 << 10}, "06 0802 20808004"},
		{"WINDOW_UPDATE stream max delta", frame.Frame{Type: frame.WindowUpdate, StreamID: 9, WindowDelta: math.MaxUint32}, "0a 0802 1009 20ffffffff0f"},
		{"RESET", frame.Frame{Type: frame.Reset, StreamID: 11, ErrorCode: frame.Cancel}, "06 0803 100b 2807"},
		{"RESET application code", frame.Frame{Type: frame.Reset, StreamID: 2, ErrorCode: 0x1234}, "07 0803 1002 28b424"},
		{"PING", frame.Frame{Type: frame.Ping, Opaque: 1}, "04 0804 3001"},
		{"PING ACK max opaque", frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: math.MaxUint64}, "0f 0804 1804 30ffffffffffffffffff01"},
		{"PING ACK zero opaque", frame.Frame{Type: frame.Ping, Flags: frame.FlagACK}, "04 0804 1804"},
		{"GOAWAY debug", frame.Frame{Type: frame.GoAway, LastStreamID: 7, ErrorCode: frame.ProtocolError, Debug: []byte("bye ✓")}, "0f 0805 2801 3807 4a07 62796520e29c93"},
		{"GOAWAY zero", frame.Frame{Type: frame.GoAway}, "02 0805"},
		{"HELLO resume offer", frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{
			Magic: []byte(frame.Magic), Version: frame.Version, ResumeKey: []byte{1, 2, 3}}},
			"12 0801 420e 0a05627261696" + "4 1001 5a03010203"},
		{"HELLO resume accepted", frame.Frame{Type: frame.Hello, HasSettings: true, Settings: resumeSettings}, ""},
		{"HELLO resume fields at limit", frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{
			ResumeKey: bytes.Repeat([]byte{1}, frame.MaxResumeField), ResumeID: bytes.Repeat([]byte{2}, frame.MaxResumeField)}}, ""},
		{"ACK", frame.Frame{Type: frame.Ack, Received: 1000}, "05 0806 50e807"},
		{"ACK zero", frame.Frame{Type: frame.Ack}, "02 0806"},
		{"ACK max", frame.Frame{Type: frame.Ack, Received: math.MaxUint64}, "0d 0806 50ffffffffffffffffff01"},
		{"RESUME REQUEST", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeRequest, SessionID: sessionID16, Nonce: nonce16}}, ""},
		{"RESUME CHALLENGE", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeChallenge, Nonce: []byte("nn")}}, "0a 0807 5a06 0802 1a026e6e"},
		{"RESUME PROOF", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeProof, Received: 1 << 40, MAC: mac32}}, ""},
		{"RESUME ACCEPTED", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeAccepted, Received: 300, MAC: mac32}}, ""},
		{"RESUME REFUSED", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeRefused}, Debug: []byte("unknown session")}, ""},
		{"RESUME every field at limit", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
			Step: frame.ResumeProof, SessionID: bytes.Repeat([]byte{1}, frame.MaxResumeField),
			Nonce: bytes.Repeat([]byte{2}, frame.MaxResumeField), Received: math.MaxUint64,
			MAC: bytes.Repeat([]byte{3}, frame.MaxResumeField)}}, ""},
		{"RESUME empty body", frame.Frame{Type: frame.Resume, HasResume: true}, "04 0807 5a00"},
		{"RESUME unknown step >= 2^31", frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: 1 << 31}}, ""},
		{"unknown type", frame.Frame{Type: 8, StreamID: 1}, "04 0808 1001"},
		{"type >= 2^31", frame.Frame{Type: 1 << 31}, "0b 08 80808080f8ffffffff01"},
		{"every field", frame.Frame{Type: frame.GoAway, StreamID: 1, Flags: 0xffff, WindowDelta: 2, ErrorCode: math.MaxUint32,
			Opaque: 1 << 63, LastStreamID: 3, HasSettings: true, Settings: resumeSettings, Debug: []byte("d"),
			Received: 4, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeProof, SessionID: sessionID16,
				Nonce: nonce16, Received: 5, MAC: mac32}, Payload: []byte("p")}, ""},
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// frameDiff describes how got differs from want; "" if they are equal.
// Nil and empty slices are equal, as they are to protobuf.
func frameDiff(got, want *frame.Frame) string {
	var d []string
	chk := func(name string, eq bool, g, w any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	chk("Type", got.Type == want.Type, got.Type, want.Type)
	chk("StreamID", got.StreamID == want.StreamID, got.StreamID, want.StreamID)
	chk("Flags", got.Flags == want.Flags, got.Flags, want.Flags)
	chk("WindowDelta", got.WindowDelta == want.WindowDelta, got.WindowDelta, want.WindowDelta)
	chk("ErrorCode", got.ErrorCode == want.ErrorCode, got.ErrorCode, want.ErrorCode)
	chk("Opaque", got.Opaque == want.Opaque, got.Opaque, want.Opaque)
	chk("LastStreamID", got.LastStreamID == want.LastStreamID, got.LastStreamID, want.LastStreamID)
	chk("HasSettings", got.HasSettings == want.HasSettings, got.HasSettings, want.HasSettings)
	gs, ws := &got.Settings, &want.Settings
	chk("Settings.Magic", bytes.Equal(gs.Magic, ws.Magic), gs.Magic, ws.Magic)
	chk("Settings.Version", gs.Version == ws.Version, gs.Version, ws.Version)
	chk("Settings.InitialWindow", gs.InitialWindow == ws.InitialWindow, gs.InitialWindow, ws.InitialWindow)
	chk("Settings.MaxFrameSize", gs.MaxFrameSize == ws.MaxFrameSize, gs.MaxFrameSize, ws.MaxFrameSize)
	chk("Settings.MaxIncomingStreams", gs.MaxIncomingStreams == ws.MaxIncomingStreams, gs.MaxIncomingStreams, ws.MaxIncomingStreams)
	chk("Settings.Compression", slices.Equal(gs.Compression, ws.Compression), gs.Compression, ws.Compression)
	chk("Settings.SessionWindow", gs.SessionWindow == ws.SessionWindow, gs.SessionWindow, ws.SessionWindow)
	chk("Settings.AcceptBacklog", gs.AcceptBacklog == ws.AcceptBacklog, gs.AcceptBacklog, ws.AcceptBacklog)
	chk("Settings.Role", gs.Role == ws.Role, gs.Role, ws.Role)
	chk("Settings.Nonce", bytes.Equal(gs.Nonce, ws.Nonce), gs.Nonce, ws.Nonce)
	chk("Settings.ResumeKey", bytes.Equal(gs.ResumeKey, ws.ResumeKey), gs.ResumeKey, ws.ResumeKey)
	chk("Settings.ResumeID", bytes.Equal(gs.ResumeID, ws.ResumeID), gs.ResumeID, ws.ResumeID)
	chk("Debug", bytes.Equal(got.Debug, want.Debug), fmt.Sprintf("%q", got.Debug), fmt.Sprintf("%q", want.Debug))
	chk("Received", got.Received == want.Received, got.Received, want.Received)
	chk("HasResume", got.HasResume == want.HasResume, got.HasResume, want.HasResume)
	gr, wr := &got.Resume, &want.Resume
	chk("Resume.Step", gr.Step == wr.Step, gr.Step, wr.Step)
	chk("Resume.SessionID", bytes.Equal(gr.SessionID, wr.SessionID), gr.SessionID, wr.SessionID)
	chk("Resume.Nonce", bytes.Equal(gr.Nonce, wr.Nonce), gr.Nonce, wr.Nonce)
	chk("Resume.Received", gr.Received == wr.Received, gr.Received, wr.Received)
	chk("Resume.MAC", bytes.Equal(gr.MAC, wr.MAC), gr.MAC, wr.MAC)
	if !bytes.Equal(got.Payload, want.Payload) {
		d = append(d, fmt.Sprintf("Payload: got %d bytes %.32x, want %d bytes %.32x", len(got.Payload), got.Payload, len(want.Payload), want.Payload))
	}
	return strings.Join(d, "\n")
}

// pbFromFrame converts f to the generated message it encodes.
func pbFromFrame(f *frame.Frame) *braidpb.Frame {
	m := &braidpb.Frame{
		Type:         braidpb.FrameType(int32(f.Type)),
		StreamId:     f.StreamID,
		Flags:        uint32(f.Flags),
		WindowDelta:  f.WindowDelta,
		ErrorCode:    uint32(f.ErrorCode),
		Opaque:       f.Opaque,
		LastStreamId: f.LastStreamID,
		Debug:        string(f.Debug),
		Received:     f.Received,
		Payload:      f.Payload,
	}
	if f.HasResume {
		r := &f.Resume
		m.Resume = &braidpb.Resume{
			Step:      braidpb.ResumeStep(int32(r.Step)),
			SessionId: r.SessionID,
			Nonce:     r.Nonce,
			Received:  r.Received,
			Mac:       r.MAC,
		}
	}
	if f.HasSettings {
		s := &f.Settings
		h := &braidpb.Hello{
			Magic:              string(s.Magic),
			Version:            s.Version,
			InitialWindow:      s.InitialWindow,
			MaxFrameSize:       s.MaxFrameSize,
			MaxIncomingStreams: s.MaxIncomingStreams,
			SessionWindow:      s.SessionWindow,
			AcceptBacklog:      s.AcceptBacklog,
			Role:               braidpb.Role(int32(s.Role)),
			Nonce:              s.Nonce,
			ResumeKey:          s.ResumeKey,
			ResumeId:           s.ResumeID,
		}
		for _, c := range s.Compression {
			h.Compression = append(h.Compression, braidpb.Compression(int32(c)))
		}
		m.Hello = h
	}
	return m
}

// frameFromPB converts a generated message to a frame.Frame.
func frameFromPB(m *braidpb.Frame) frame.Frame {
	f := frame.Frame{
		Type:         frame.Type(uint32(m.GetType())),
		StreamID:     m.GetStreamId(),
		Flags:        frame.Flags(m.GetFlags()),
		WindowDelta:  m.GetWindowDelta(),
		ErrorCode:    frame.ErrorCode(m.GetErrorCode()),
		Opaque:       m.GetOpaque(),
		LastStreamID: m.GetLastStreamId(),
		Debug:        []byte(m.GetDebug()),
		Received:     m.GetReceived(),
		Payload:      m.GetPayload(),
	}
	if r := m.GetResume(); r != nil {
		f.HasResume = true
		f.Resume = frame.ResumeInfo{
			Step:      frame.ResumeStep(uint32(r.GetStep())),
			SessionID: r.GetSessionId(),
			Nonce:     r.GetNonce(),
			Received:  r.GetReceived(),
			MAC:       r.GetMac(),
		}
	}
	if h := m.GetHello(); h != nil {
		f.HasSettings = true
		f.Settings = frame.Settings{
			Magic:              []byte(h.GetMagic()),
			Version:            h.GetVersion(),
			InitialWindow:      h.GetInitialWindow(),
			MaxFrameSize:       h.GetMaxFrameSize(),
			MaxIncomingStreams: h.GetMaxIncomingStreams(),
			SessionWindow:      h.GetSessionWindow(),
			AcceptBacklog:      h.GetAcceptBacklog(),
			Role:               frame.Role(uint32(h.GetRole())),
			Nonce:              h.GetNonce(),
			ResumeKey:          h.GetResumeKey(),
			ResumeID:           h.GetResumeId(),
		}
		for _, c := range h.GetCompression() {
			f.Settings.Compression = append(f.Settings.Compression, frame.Compression(uint32(c)))
		}
	}
	return f
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// checkAgainstProto asserts that f's body is what proto.Marshal makes of
// the equivalent message, and that both decoders read each other's bytes
// back to f.
func checkAgainstProto(t *testing.T, f *frame.Frame) {
	t.Helper()
	body := f.AppendBody(nil)
	if len(body) != f.BodySize() {
		t.Fatalf("%v: BodySize %d, AppendBody wrote %d", f, f.BodySize(), len(body))
	}
	want, err := deterministic.Marshal(pbFromFrame(f))
	if err != nil {
		t.Fatalf("%v: proto.Marshal: %v", f, err)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("%v: body differs from proto.Marshal\n got %x\nwant %x", f, body, want)
	}
	var m braidpb.Frame
	if err := proto.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v: proto.Unmarshal of codec output: %v", f, err)
	}
	if back := frameFromPB(&m); frameDiff(&back, f) != "" {
		t.Fatalf("%v: proto.Unmarshal of codec output:\n%s", f, frameDiff(&back, f))
	}
	var got frame.Frame
	if err := frame.Parse(&got, want); err != nil {
		t.Fatalf("%v: Parse of proto.Marshal output: %v", f, err)
	}
	if d := frameDiff(&got, f); d != "" {
		t.Fatalf("%v: Parse of proto.Marshal output:\n%s", f, d)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range codecCases() {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.f.Append(nil)
			if len(wire) != tc.f.Size() {
				t.Errorf("Size() = %d, Append wrote %d bytes", tc.f.Size(), len(wire))
			}
			if tc.wireHex != "" {
				if want := mustHex(t, tc.wireHex); !bytes.Equal(wire, want) {
					t.Errorf("Append:\n got %x\nwant %x", wire, want)
				}
			}
			prefix, n := protowire.ConsumeVarint(wire)
			if n < 0 || int(prefix) != len(wire)-n || int(prefix) != tc.f.BodySize() {
				t.Fatalf("length prefix %d (n=%d) does not match body of %d bytes (BodySize %d)", prefix, n, len(wire)-n, tc.f.BodySize())
			}
			if body := tc.f.AppendBody([]byte("junk")); !bytes.Equal(body[4:], wire[n:]) || string(body[:4]) != "junk" {
				t.Errorf("AppendBody does not append the body after existing bytes")
			}

			var parsed frame.Frame
			if err := frame.Parse(&parsed, wire[n:]); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d := frameDiff(&parsed, &tc.f); d != "" {
				t.Errorf("Parse:\n%s", d)
			}

			r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
			defer r.Close()
			got, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if d := frameDiff(got, &tc.f); d != "" {
				t.Errorf("ReadFrame:\n%s", d)
			}
			if d := frameDiff(got, &parsed); d != "" {
				t.Errorf("ReadFrame and Parse disagree:\n%s", d)
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Errorf("ReadFrame after the only frame: %v, want io.EOF", err)
			}
			if r.BytesRead() != uint64(len(wire)) {
				t.Errorf("BytesRead = %d, want %d", r.BytesRead(), len(wire))
			}

			checkAgainstProto(t, &tc.f)
		})
	}
}

// TestRoundTripStream reads every case back from one stream.
func TestRoundTripStream(t *testing.T) {
	cases := codecCases()
	var wire []byte
	for _, tc := range cases {
		wire = tc.f.Append(wire)
	}
	r := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	defer r.Close()
	for _, tc := range cases {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("%s: ReadFrame: %v", tc.name, err)
		}
		if d := frameDiff(got, &tc.f); d != "" {
			t.Errorf("%s:\n%s", tc.name, d)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
	if r.BytesRead() != uint64(len(wire)) || r.Buffered() != 0 {
		t.Fatalf("BytesRead %d, Buffered %d; want %d, 0", r.BytesRead(), r.Buffered(), len(wire))
	}
}

func TestAppendDataHeader(t *testing.T) {
	ids := []uint32{0, 1, 127, 128, 1 << 21, math.MaxUint32}
	flagSets := []frame.Flags{0, frame.FlagSYN, frame.FlagFIN, frame.FlagSYN | frame.FlagFIN, frame.FlagCompressed | frame.FlagFIN, math.MaxUint32}
	lens := []int{0, 1, 127, 128, 16383, 16384, 64 << 10, 1 << 20}
	for _, id := range ids {
		for _, fl := range flagSets {
			for _, n := range lens {
				payload := make([]byte, n)
				for i := range payload {
					payload[i] = byte(i * 7)
				}
				f := frame.Frame{Type: frame.Data, StreamID: id, Flags: fl, Payload: payload}
				hdr := frame.AppendDataHeader([]byte{0xee}, id, fl, n)
				if hdr[0] != 0xee {
					t.Fatalf("AppendDataHeader overwrote existing bytes")
				}
				hdr = hdr[1:]
				if len(hdr) > frame.MaxDataHeader {
					t.Errorf("id=%d flags=%v len=%d: header is %d bytes, MaxDataHeader %d", id, fl, n, len(hdr), frame.MaxDataHeader)
				}
				if over := f.BodySize() - n; over > frame.MaxDataOverhead {
					t.Errorf("id=%d flags=%v len=%d: overhead %d > MaxDataOverhead %d", id, fl, n, over, frame.MaxDataOverhead)
				}
				got := append(hdr, payload...)
				if want := f.Append(nil); !bytes.Equal(got, want) {
					t.Fatalf("id=%d flags=%v len=%d: header+payload != Append\n got %.64x\nwant %.64x", id, fl, n, got, want)
				}
			}
		}
	}
}

func TestAppendWindowUpdate(t *testing.T) {
	for _, id := range []uint32{0, 1, math.MaxUint32} {
		for _, delta := range []uint32{0, 1, 1 << 20, math.MaxUint32} {
			f := frame.Frame{Type: frame.WindowUpdate, StreamID: id, WindowDelta: delta}
			got := frame.AppendWindowUpdate([]byte("x"), id, delta)
			if want := f.Append([]byte("x")); !bytes.Equal(got, want) {
				t.Errorf("AppendWindowUpdate(%d, %d) = %x, want %x", id, delta, got, want)
			}
		}
	}
}

// --- property test against the generated code ---

func randU32(r *rand.Rand) uint32 {
	switch r.IntN(10) {
	case 0, 1:
		return 0
	case 2:
		return []uint32{1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<28 - 1, 1 << 28}[r.IntN(9)]
	case 3:
		return []uint32{1<<31 - 1, 1 << 31, 1<<31 + 1, math.MaxUint32 - 1, math.MaxUint32}[r.IntN(5)]
	case 4, 5:
		return uint32(r.IntN(300))
	}
	return r.Uint32()
}

func randU64(r *rand.Rand) uint64 {
	switch r.IntN(8) {
	case 0, 1:
		return 0
	case 2:
		return []uint64{1, 1<<63 - 1, 1 << 63, math.MaxUint64 - 1, math.MaxUint64, math.MaxUint32, 1 << 32}[r.IntN(7)]
	case 3:
		return uint64(r.Uint32())
	}
	return r.Uint64()
}

// randEnum returns a value for an enum field: mostly defined values,
// sometimes anything, including values at or above 2^31 (negative int32).
func randEnum(r *rand.Rand, defined int) uint32 {
	if r.IntN(4) == 0 {
		return randU32(r)
	}
	return uint32(r.IntN(defined))
}

var runeRanges = [][2]rune{{0, 0x7f}, {0x80, 0x7ff}, {0x800, 0xd7ff}, {0xe000, 0xfffd}, {0x10000, utf8.MaxRune}}

func randUTF8(r *rand.Rand, max int) []byte {
	n := r.IntN(max + 1)
	if r.IntN(3) == 0 {
		n = 0
	}
	var b []byte
	for len(b) < n {
		rg := runeRanges[r.IntN(len(runeRanges))]
		b = utf8.AppendRune(b, rg[0]+rune(r.Int32N(int32(rg[1]-rg[0]+1))))
	}
	return b
}

func randBytes(r *rand.Rand) []byte {
	var n int
	switch r.IntN(10) {
	case 0, 1, 2:
		return nil
	case 3:
		return []byte{}
	case 4:
		n = 20000 + r.IntN(120000) // 3-byte length
	default:
		n = r.IntN(300)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// randShort returns nil half the time, else 0 to max random bytes.
func randShort(r *rand.Rand, max int) []byte {
	if r.IntN(2) == 0 {
		return nil
	}
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randFrame(r *rand.Rand) frame.Frame {
	f := frame.Frame{
		Type:         frame.Type(randEnum(r, 8)),
		StreamID:     randU32(r),
		Flags:        frame.Flags(randU32(r)),
		WindowDelta:  randU32(r),
		ErrorCode:    frame.ErrorCode(randU32(r)),
		Opaque:       randU64(r),
		LastStreamID: randU32(r),
		Debug:        randUTF8(r, 200),
		Received:     randU64(r),
		Payload:      randBytes(r),
	}
	if r.IntN(3) == 0 {
		f.HasResume = true
		f.Resume = frame.ResumeInfo{
			Step:      frame.ResumeStep(randEnum(r, 6)),
			SessionID: randShort(r, frame.MaxResumeField),
			Nonce:     randShort(r, frame.MaxResumeField),
			Received:  randU64(r),
			MAC:       randShort(r, frame.MaxResumeField),
		}
	}
	if r.IntN(2) == 0 {
		f.HasSettings = true
		s := &f.Settings
		if r.IntN(2) == 0 {
			s.Magic = []byte(frame.Magic)
		} else {
			s.Magic = randUTF8(r, 40)
		}
		s.Version = randU32(r)
		s.InitialWindow = randU32(r)
		s.MaxFrameSize = randU32(r)
		s.MaxIncomingStreams = randU32(r)
		s.SessionWindow = randU32(r)
		s.AcceptBacklog = randU32(r)
		s.Role = frame.Role(randEnum(r, 2))
		if r.IntN(2) == 0 {
			s.Nonce = make([]byte, r.IntN(frame.MaxNonce+1))
			for i := range s.Nonce {
				s.Nonce[i] = byte(r.Uint32())
			}
		}
		s.ResumeKey = randShort(r, frame.MaxResumeField)
		s.ResumeID = randShort(r, frame.MaxResumeField)
		for range r.IntN(frame.MaxCompressionOffers + 1) {
			s.Compression = append(s.Compression, frame.Compression(randEnum(r, 2)))
		}
	}
	return f
}

func TestPropertyMatchesProtobuf(t *testing.T) {
	const n = 4000
	seed := uint64(0x6272616964) // "braid"
	r := rand.New(rand.NewPCG(seed, seed))
	frames := make([]frame.Frame, n)
	var wire []byte
	for i := range frames {
		frames[i] = randFrame(r)
		checkAgainstProto(t, &frames[i])
		wire = frames[i].Append(wire)
	}
	// The same frames through a Reader, as one stream: exercises the body
	// buffer changing size class from frame to frame.
	rd := frame.NewReader(bytes.NewReader(wire), frame.MaxMaxFrameSize)
	defer rd.Close()
	for i := range frames {
		got, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: ReadFrame: %v", i, err)
		}
		if d := frameDiff(got, &frames[i]); d != "" {
			t.Fatalf("frame %d (%v): ReadFrame:\n%s", i, &frames[i], d)
		}
	}
	if _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// --- protobuf-legal variations the decoder must accept ---

// wb builds protobuf bytes field by field, in whatever order a test wants.
type wb []byte

func (b wb) varint(num protowire.Number, v uint64) wb {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func (b wb) bytes(num protowire.Number, v []byte) wb {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func (b wb) fixed32(num protowire.Number, v uint32) wb {
	return protowire.AppendFixed32(protowire.AppendTag(b, num, protowire.Fixed32Type), v)
}

func (b wb) fixed64(num protowire.Number, v uint64) wb {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func (b wb) group(num protowire.Number, inner wb) wb {
	b = append(protowire.AppendTag(b, num, protowire.StartGroupType), inner...)
	return protowire.AppendTag(b, num, protowire.EndGroupType)
}

func (b wb) raw(s ...byte) wb { return append(b, s...) }

// unknowns is one unknown field of every wire type, the group holding
// fields of every type and a nested group.
func unknowns(base protowire.Number) wb {
	inner := wb{}.varint(1, 5).fixed32(2, 6).bytes(3, []byte("x")).group(4, wb{}.fixed64(1, 7))
	return wb{}.varint(base, math.MaxUint64).fixed32(base+1, 0xdeadbeef).fixed64(base+2, 1).
		bytes(base+3, []byte("unknown\xff")).group(base+4, inner).varint(protowire.MaxValidNumber, 1)
}

func TestParseAcceptsProtobufVariations(t *testing.T) {
	helloBody := wb{}.bytes(1, []byte("braid")).varint(2, 1).varint(3, 1000).varint(4, 2000).
		varint(5, 3).bytes(6, []byte{1, 0}).varint(7, 4000)
	hello := frame.Settings{Magic: []byte("braid"), Version: 1, InitialWindow: 1000, MaxFrameSize: 2000,
		MaxIncomingStreams: 3, Compression: []frame.Compression{1, 0}, SessionWindow: 4000}

	cases := []struct {
		name string
		body wb
		want frame.Frame
	}{
		{"empty body", wb{}, frame.Frame{}},
		{"unknown fields of every wire type around DATA",
			unknowns(16).varint(2, 9).raw(unknowns(20)...).bytes(15, []byte("pay")).raw(unknowns(1000)...),
			frame.Frame{StreamID: 9, Payload: []byte("pay")}},
		{"unknown fields inside hello",
			wb{}.varint(1, 1).bytes(8, append(unknowns(10), append(helloBody, unknowns(100)...)...)),
			frame.Frame{Type: frame.Hello, HasSettings: true, Settings: hello}},
		{"reverse order",
			wb{}.bytes(15, []byte("p")).bytes(9, []byte("d")).bytes(8, wb{}.varint(7, 4000).bytes(6, []byte{1, 0}).
				varint(5, 3).varint(4, 2000).varint(3, 1000).varint(2, 1).bytes(1, []byte("braid"))).
				varint(7, 8).varint(6, 7).varint(5, 6).varint(4, 5).varint(3, 4).varint(2, 3).varint(1, 5),
			frame.Frame{Type: frame.GoAway, StreamID: 3, Flags: 4, WindowDelta: 5, ErrorCode: 6, Opaque: 7, LastStreamID: 8,
				HasSettings: true, Settings: hello, Debug: []byte("d"), Payload: []byte("p")}},
		{"repeated scalars: last wins",
			wb{}.varint(1, 4).varint(2, 1).varint(6, 1).varint(2, 2).varint(1, 2).bytes(15, []byte("a")).
				bytes(9, []byte("x")).varint(6, 0).bytes(15, []byte("bb")).bytes(9, []byte("yz")).varint(2, 3),
			frame.Frame{Type: frame.WindowUpdate, StreamID: 3, Debug: []byte("yz"), Payload: []byte("bb")}},
		{"hello twice merges",
			wb{}.varint(1, 1).bytes(8, wb{}.bytes(1, []byte("x")).varint(2, 1).bytes(6, []byte{1})).
				bytes(8, wb{}.bytes(1, []byte("braid")).varint(3, 10).bytes(6, []byte{0, 1})).
				bytes(8, wb{}),
			frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{Magic: []byte("braid"), Version: 1,
				InitialWindow: 10, Compression: []frame.Compression{1, 0, 1}}}},
		{"unpacked compression list, mixed with packed",
			wb{}.bytes(8, wb{}.varint(6, 1).varint(6, 0).bytes(6, []byte{2, 3}).varint(6, 1<<31).varint(6, math.MaxUint64)),
			frame.Frame{HasSettings: true, Settings: frame.Settings{Compression: []frame.Compression{1, 0, 2, 3, 1 << 31, math.MaxUint32}}}},
		{"empty packed compression list", wb{}.bytes(8, wb{}.bytes(6, nil)), frame.Frame{HasSettings: true}},
		{"exactly MaxCompressionOffers", wb{}.bytes(8, wb{}.bytes(6, make([]byte, frame.MaxCompressionOffers))),
			frame.Frame{HasSettings: true, Settings: frame.Settings{Compression: make([]frame.Compression, frame.MaxCompressionOffers)}}},
		{"known numbers with wrong wire type are skipped",
			wb{}.varint(2, 5).fixed32(1, 2).fixed64(2, 1).bytes(3, []byte{1}).group(4, wb{}.varint(1, 1)).fixed32(5, 1).
				bytes(6, []byte{1}).bytes(7, []byte{1}).varint(8, 1).fixed64(9, 1).varint(15, 1).
				bytes(8, wb{}.varint(1, 1).fixed32(2, 1).bytes(3, nil).fixed64(6, 1).group(7, nil)),
			frame.Frame{StreamID: 5, HasSettings: true}},
		{"hello as group is skipped", wb{}.group(8, wb{}.varint(2, 1)), frame.Frame{}},
		{"type as 5-byte uint32 varint", wb{}.varint(1, math.MaxUint32), frame.Frame{Type: math.MaxUint32}},
		{"high bits of 64-bit varints dropped for 32-bit fields",
			wb{}.varint(2, 1<<32|7).varint(3, math.MaxUint64).varint(4, 1<<40).varint(5, 1<<32).varint(7, 1<<33|1),
			frame.Frame{StreamID: 7, Flags: math.MaxUint32, LastStreamID: 1}},
		{"non-minimal varints", wb{}.raw(0x90, 0x00, 0x81, 0x80, 0x00), frame.Frame{StreamID: 1}},
		{"resume fields in reverse order, unknowns around",
			wb{}.varint(1, 7).bytes(11, unknowns(16).bytes(5, []byte("mac")).varint(4, 9).bytes(3, []byte("n")).
				raw(unknowns(100)...).bytes(2, []byte("id")).varint(1, 3)).varint(10, 11),
			frame.Frame{Type: frame.Resume, Received: 11, HasResume: true, Resume: frame.ResumeInfo{
				Step: frame.ResumeProof, SessionID: []byte("id"), Nonce: []byte("n"), Received: 9, MAC: []byte("mac")}}},
		{"resume twice merges, last value wins",
			wb{}.bytes(11, wb{}.varint(1, 1).bytes(2, []byte("a")).bytes(3, []byte("x")).varint(4, 5)).
				bytes(11, wb{}.varint(1, 3).bytes(3, []byte("yy")).bytes(5, []byte("m"))).
				bytes(11, wb{}),
			frame.Frame{HasResume: true, Resume: frame.ResumeInfo{
				Step: frame.ResumeProof, SessionID: []byte("a"), Nonce: []byte("yy"), Received: 5, MAC: []byte("m")}}},
		{"received given twice: last wins", wb{}.varint(10, 5).varint(1, 6).varint(10, 1<<40),
			frame.Frame{Type: frame.Ack, Received: 1 << 40}},
		{"resume numbers with wrong wire types are skipped",
			wb{}.fixed64(10, 1).varint(11, 1).bytes(11, wb{}.bytes(1, []byte{1}).varint(2, 1).fixed32(3, 1).
				bytes(4, []byte{1}).group(5, wb{}.varint(1, 1))),
			frame.Frame{HasResume: true}},
		{"resume as group is skipped", wb{}.group(11, wb{}.varint(1, 1)), frame.Frame{}},
		{"resume step >= 2^31, 10-byte varint", wb{}.bytes(11, wb{}.varint(1, math.MaxUint64)),
			frame.Frame{HasResume: true, Resume: frame.ResumeInfo{Step: math.MaxUint32}}},
		{"hello resume key and id twice: last wins",
			wb{}.bytes(8, wb{}.bytes(11, []byte("k1")).bytes(12, []byte("i1"))).bytes(8, wb{}.bytes(11, []byte("k2"))),
			frame.Frame{HasSettings: true, Settings: frame.Settings{ResumeKey: []byte("k2"), ResumeID: []byte("i1")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got frame.Frame
			if err := frame.Parse(&got, tc.body); err != nil {
				t.Fatalf("Parse(%x): %v", []byte(tc.body), err)
			}
			if d := frameDiff(&got, &tc.want); d != "" {
				t.Errorf("Parse(%x):\n%s", []byte(tc.body), d)
			}
			// The reference decoder reads the same.
			var m braidpb.Frame
			if err := proto.Unmarshal(tc.body, &m); err != nil {
				t.Fatalf("proto.Unmarshal: %v", err)
			}
			if pf := frameFromPB(&m); frameDiff(&pf, &tc.want) != "" {
				t.Errorf("proto.Unmarshal disagrees with the table:\n%s", frameDiff(&pf, &tc.want))
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name string
		body wb
	}{
		{"truncated tag", wb{0x80}},
		{"field number 0", wb{0x00, 0x01}},
		{"field number above 2^29-1", wb{}.varint(protowire.MaxValidNumber+1, 1)},
		{"field number above 2^29-1 in hello", wb{}.bytes(8, wb{}.varint(protowire.MaxValidNumber+1, 1))},
		{"tag varint overflow", wb{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"wire type 6", wb{}.raw(byte(10<<3 | 6))},
		{"wire type 7", wb{}.raw(byte(10<<3|7), 0)},
		{"stray end group", wb{}.raw(byte(10<<3 | 4))},
		{"unterminated group", wb{}.raw(byte(10<<3|3), 0x08, 0x01)},
		{"mismatched end group", wb{}.raw(byte(10<<3|3), byte(11<<3|4))},
		{"truncated varint value", wb{0x10, 0x80}},
		{"varint value overflow", wb{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"payload longer than body", wb{0x7a, 0x05, 1, 2}},
		{"debug longer than body", wb{0x4a, 0x01}},
		{"truncated unknown fixed32", wb{}.raw(byte(10<<3|5), 1, 2, 3)},
		{"truncated unknown fixed64", wb{}.raw(byte(10<<3|1), 1, 2, 3, 4, 5, 6, 7)},
		{"truncated unknown bytes", wb{}.raw(byte(10<<3|2), 3, 1)},
		{"invalid UTF-8 debug", wb{}.varint(1, 5).bytes(9, []byte("bye\xff"))},
		{"surrogate in debug", wb{}.bytes(9, []byte("\xed\xa0\x80"))},
		{"invalid UTF-8 magic", wb{}.bytes(8, wb{}.bytes(1, []byte("br\xc3aid")))},
		{"hello longer than body", wb{0x42, 0x03, 0x10, 0x01}},
		{"truncated field inside hello", wb{}.bytes(8, wb{0x10})},
		{"bad tag inside hello", wb{}.bytes(8, wb{0x00})},
		{"bad packed compression entry", wb{}.bytes(8, wb{}.bytes(6, []byte{1, 0x80}))},
		{"group ends inside hello", wb{}.raw(byte(8<<3|2), 1, byte(8<<3|4))},
		{"truncated received", wb{}.varint(1, 6).raw(byte(10<<3), 0x80)},
		{"resume longer than body", wb{0x5a, 0x03, 0x08, 0x01}},
		{"truncated field inside resume", wb{}.bytes(11, wb{0x08})},
		{"truncated bytes inside resume", wb{}.bytes(11, wb{0x12, 0x05, 1})},
		{"bad tag inside resume", wb{}.bytes(11, wb{0x00})},
		{"field number above 2^29-1 in resume", wb{}.bytes(11, wb{}.varint(protowire.MaxValidNumber+1, 1))},
		{"group ends inside resume", wb{}.raw(byte(11<<3|2), 1, byte(11<<3|4))},
		{"bad unknown field inside resume", wb{}.bytes(11, wb{}.raw(byte(9<<3|5), 1))},
		{"bad resume key inside hello", wb{}.bytes(8, wb{0x5a, 0x02, 1})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f frame.Frame
			err := frame.Parse(&f, tc.body)
			if !errors.Is(err, frame.ErrMalformed) {
				t.Errorf("Parse(%x) = %v, want ErrMalformed", []byte(tc.body), err)
			}
			if perr := proto.Unmarshal(tc.body, new(braidpb.Frame)); perr == nil {
				t.Errorf("proto.Unmarshal(%x) accepts it; the decoders must agree", []byte(tc.body))
			}
		})
	}
}

// TestParseLimitsCompressionOffers: the one place the codec is stricter
// than protobuf, to bound what a peer's HELLO can make us allocate.
func TestParseLimitsCompressionOffers(t *testing.T) {
	n := frame.MaxCompressionOffers + 1
	half := wb{}.bytes(6, make([]byte, n/2+1))
	cases := []struct {
		name string
		body wb
	}{
		{"packed", wb{}.bytes(8, wb{}.bytes(6, make([]byte, n)))},
		{"unpacked", wb{}.bytes(8, slices.Repeat(wb{}.varint(6, 1), n))},
		{"split over two hellos", wb{}.bytes(8, half).bytes(8, half)},
	}
	for _, tc := range cases {
		var f frame.Frame
		if err := frame.Parse(&f, tc.body); !errors.Is(err, frame.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", tc.name, err)
		}
		var m braidpb.Frame
		if err := proto.Unmarshal(tc.body, &m); err != nil || len(m.GetHello().GetCompression()) <= frame.MaxCompressionOffers {
			t.Errorf("%s: test input is wrong: proto.Unmarshal = %v with %d offers", tc.name, err, len(m.GetHello().GetCompression()))
		}
	}
}

// TestParseLimitsResumeFields: each byte field of the resume machinery is
// bounded by MaxResumeField on decode, though protobuf accepts any length.
func TestParseLimitsResumeFields(t *testing.T) {
	cases := []struct {
		name string
		body func(field []byte) wb
	}{
		{"hello resume_key", func(v []byte) wb { return wb{}.bytes(8, wb{}.bytes(11, v)) }},
		{"hello resume_id", func(v []byte) wb { return wb{}.bytes(8, wb{}.bytes(12, v)) }},
		{"resume session_id", func(v []byte) wb { return wb{}.bytes(11, wb{}.bytes(2, v)) }},
		{"resume nonce", func(v []byte) wb { return wb{}.bytes(11, wb{}.bytes(3, v)) }},
		{"resume mac", func(v []byte) wb { return wb{}.bytes(11, wb{}.bytes(5, v)) }},
		{"resume mac, in the second of two resumes", func(v []byte) wb {
			return wb{}.bytes(11, wb{}.bytes(5, []byte("ok"))).bytes(11, wb{}.bytes(5, v))
		}},
	}
	over := make([]byte, frame.MaxResumeField+1)
	for _, tc := range cases {
		var f frame.Frame
		body := tc.body(over)
		if err := frame.Parse(&f, body); !errors.Is(err, frame.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", tc.name, err)
		}
		var m braidpb.Frame
		if err := proto.Unmarshal(body, &m); err != nil || !overLimit(&m) {
			t.Errorf("%s: test input is wrong: proto.Unmarshal = %v, over the limit: %v", tc.name, err, overLimit(&m))
		}
		if err := frame.Parse(&f, tc.body(over[:frame.MaxResumeField])); err != nil {
			t.Errorf("%s: with %d bytes: Parse = %v, want success", tc.name, frame.MaxResumeField, err)
		}
	}
}

// overLimit reports whether m has more in it than Parse accepts: the
// codec's deliberate limits on what a peer can make it hold.
func overLimit(m *braidpb.Frame) bool {
	h, r := m.GetHello(), m.GetResume()
	return len(h.GetCompression()) > frame.MaxCompressionOffers ||
		len(h.GetNonce()) > frame.MaxNonce ||
		len(h.GetResumeKey()) > frame.MaxResumeField ||
		len(h.GetResumeId()) > frame.MaxResumeField ||
		len(r.GetSessionId()) > frame.MaxResumeField ||
		len(r.GetNonce()) > frame.MaxResumeField ||
		len(r.GetMac()) > frame.MaxResumeField
}

// TestResumeNames: the frame package's names match the schema's.
func TestResumeNames(t *testing.T) {
	for _, ty := range []frame.Type{frame.Ack, frame.Resume} {
		if want := braidpb.FrameType(ty).String(); ty.String() != want || !ty.Known() {
			t.Errorf("Type %d: String %q, Known %v; schema calls it %q", uint32(ty), ty, ty.Known(), want)
		}
	}
	if frame.Type(8).Known() {
		t.Errorf("Type 8 is Known")
	}
	for v := range uint32(7) {
		s := frame.ResumeStep(v)
		want := strings.TrimPrefix(braidpb.ResumeStep(v).String(), "RESUME_")
		if v == 0 || v == 6 {
			want = fmt.Sprintf("ResumeStep(%d)", v)
		}
		if s.String() != want {
			t.Errorf("ResumeStep(%d).String() = %q, want %q", v, s, want)
		}
	}
	if got := frame.ResumeStep(math.MaxUint32).String(); got != "ResumeStep(4294967295)" {
		t.Errorf("ResumeStep(MaxUint32).String() = %q", got)
	}
}

func TestFrameStringResume(t *testing.T) {
	cases := []struct {
		f    frame.Frame
		want string
	}{
		{frame.Frame{Type: frame.Ack, Received: 12345}, "ACK received=12345"},
		{frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRequest,
			SessionID: []byte{0xab, 0xcd}, Nonce: nonce16}},
			"RESUME REQUEST session=abcd nonce=16B received=0 mac=0B"},
		{frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRefused},
			Debug: []byte("expired")},
			`RESUME REFUSED session= nonce=0B received=0 mac=0B debug="expired"`},
	}
	for _, tc := range cases {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	// A HELLO's resume key is a secret: String shows its length only.
	h := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: resumeSettings}
	got := h.String()
	if !strings.Contains(got, "resume_key=32B") || !strings.Contains(got, fmt.Sprintf("resume_id=%x", resumeSettings.ResumeID)) {
		t.Errorf("HELLO String() = %q: want resume_key=32B and the resume id", got)
	}
	if strings.Contains(got, fmt.Sprintf("%x", resumeSettings.ResumeKey)) || strings.Contains(got, string(resumeSettings.ResumeKey)) {
		t.Errorf("HELLO String() = %q shows the resume key", got)
	}
}

// TestParseAliasesResumeFields: like Payload, the resume byte fields point
// into the body Parse was given (Reader.Detach relies on it).
func TestParseAliasesResumeFields(t *testing.T) {
	in := func(s, body []byte) bool {
		return len(s) > 0 && &s[0] == &body[bytes.Index(body, s)]
	}
	r := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
		Step: frame.ResumeProof, SessionID: []byte("S-S-S-S"), Nonce: []byte("N-N-N-N"), MAC: []byte("M-M-M-M")}}
	body := r.AppendBody(nil)
	var f frame.Frame
	if err := frame.Parse(&f, body); err != nil {
		t.Fatal(err)
	}
	if !in(f.Resume.SessionID, body) || !in(f.Resume.Nonce, body) || !in(f.Resume.MAC, body) {
		t.Errorf("RESUME fields do not alias the body")
	}
	h := frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{ResumeKey: []byte("K-K-K-K"), ResumeID: []byte("I-I-I-I")}}
	body = h.AppendBody(nil)
	if err := frame.Parse(&f, body); err != nil {
		t.Fatal(err)
	}
	if !in(f.Settings.ResumeKey, body) || !in(f.Settings.ResumeID, body) {
		t.Errorf("HELLO resume fields do not alias the body")
	}
}

// TestParseOverwrites: Parse resets every field, so a reused Frame keeps
// nothing of the previous frame.
func TestParseOverwrites(t *testing.T) {
	var f frame.Frame
	for _, tc := range codecCases() {
		if err := frame.Parse(&f, tc.f.AppendBody(nil)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if d := frameDiff(&f, &tc.f); d != "" {
			t.Fatalf("%s: after reuse:\n%s", tc.name, d)
		}
	}
}

func TestParseTruncatedBodies(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	frames := make([]frame.Frame, 0, 200)
	for _, tc := range codecCases() {
		frames = append(frames, tc.f)
	}
	for len(frames) < cap(frames) {
		f := randFrame(r)
		if len(f.Payload) > 64 {
			f.Payload = f.Payload[:64] // truncation points are what matters, keep it quick
		}
		frames = append(frames, f)
	}
	for _, f := range frames {
		body := f.AppendBody(nil)
		for i := range len(body) {
			var got frame.Frame
			err := frame.Parse(&got, body[:i])
			if err != nil && !errors.Is(err, frame.ErrMalformed) {
				t.Fatalf("%v: Parse(body[:%d]) = %v, want nil or ErrMalformed", &f, i, err)
			}
			// A prefix that parses must be a protobuf-valid message too.
			if perr := proto.Unmarshal(body[:i], new(braidpb.Frame)); (err == nil) != (perr == nil) {
				t.Fatalf("%v: body[:%d]: Parse %v, proto.Unmarshal %v", &f, i, err, perr)
			}
		}
	}
}
