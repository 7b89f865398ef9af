package frame_test

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/braidmux/braid/frame"
	braidpb "github.com/braidmux/braid/proto"
)

// specPath is SPEC.md, relative to this package's directory (where go
// test runs).
const specPath = "../SPEC.md"

// specExamples are the frames SPEC.md §14 and §16.7 show as hex, by the
// NAME of their ```hex frame=NAME block. Every one must appear in SPEC.md
// exactly once, and SPEC.md must have no other such block.
var specExamples = map[string]frame.Frame{
	"hello": {
		Type:        frame.Hello,
		HasSettings: true,
		Settings: frame.Settings{
			Magic:              []byte(frame.Magic),
			Version:            frame.Version,
			InitialWindow:      262144,
			MaxFrameSize:       65536,
			MaxIncomingStreams: 1000,
			Compression:        []frame.Compression{frame.CompressionZstd, frame.CompressionNone},
			SessionWindow:      67108864,
		},
	},
	"data": {
		Type:     frame.Data,
		StreamID: 1,
		Flags:    frame.FlagSYN,
		Payload:  []byte("hello"),
	},
	"window_update": {
		Type:        frame.WindowUpdate,
		StreamID:    0,
		WindowDelta: 65536,
	},
	"ping": {
		Type:   frame.Ping,
		Flags:  frame.FlagACK,
		Opaque: 0x1122334455667788,
	},
	"goaway": {
		Type:         frame.GoAway,
		LastStreamID: 7,
		ErrorCode:    frame.ProtocolError,
		Debug:        []byte("bad stream id"),
	},
	"reset": {
		Type:      frame.Reset,
		StreamID:  3,
		ErrorCode: frame.Cancel,
	},

	// §16.7.
	"ack": {
		Type:     frame.Ack,
		Received: 1048576,
	},
	"resume_request": {
		Type:      frame.Resume,
		HasResume: true,
		Resume: frame.ResumeInfo{
			Step:      frame.ResumeRequest,
			SessionID: specResume.id,
			Nonce:     specResume.clientNonce,
		},
	},
	"resume_challenge": {
		Type:      frame.Resume,
		HasResume: true,
		Resume: frame.ResumeInfo{
			Step:  frame.ResumeChallenge,
			Nonce: specResume.serverNonce,
		},
	},
	"resume_proof": {
		Type:      frame.Resume,
		HasResume: true,
		Resume: frame.ResumeInfo{
			Step:     frame.ResumeProof,
			Received: specResume.clientReceived,
			MAC:      specResumeMAC("braid resume client proof", specResume.clientReceived),
		},
	},
	"resume_accepted": {
		Type:      frame.Resume,
		HasResume: true,
		Resume: frame.ResumeInfo{
			Step:     frame.ResumeAccepted,
			Received: specResume.serverReceived,
			MAC:      specResumeMAC("braid resume server proof", specResume.serverReceived),
		},
	},
	"resume_refused": {
		Type:      frame.Resume,
		HasResume: true,
		Resume:    frame.ResumeInfo{Step: frame.ResumeRefused},
		Debug:     []byte("unknown session"),
	},
}

// specResume is the session of SPEC.md §16.7.2's resume handshake, as its
// text describes it.
var specResume = struct {
	clientPriv, serverPriv   []byte // X25519 private keys
	clientKey, serverKey, id []byte // the HELLOs' resume_key (public keys) and resume_id
	clientNonce, serverNonce []byte
	clientReceived           uint64 // of the server's sequence, in PROOF
	serverReceived           uint64 // of the client's sequence, in ACCEPTED
}{
	clientPriv:     specRange(0x00, 32),
	serverPriv:     specRange(0x20, 32),
	clientKey:      specX25519Public(specRange(0x00, 32)),
	serverKey:      specX25519Public(specRange(0x20, 32)),
	id:             specRange(0x40, 16),
	clientNonce:    specRange(0x50, 16),
	serverNonce:    specRange(0x60, 16),
	clientReceived: 123456,
	serverReceived: 1048576,
}

// specRange returns the n bytes first, first+1, ….
func specRange(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = first + byte(i)
	}
	return b
}

// specX25519Public returns the X25519 public key of a private key.
func specX25519Public(priv []byte) []byte {
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		panic(err)
	}
	return k.PublicKey().Bytes()
}

// specX25519Shared is X25519 of the client's private key and the
// server's public key (which both sides compute).
func specX25519Shared() []byte {
	k, err := ecdh.X25519().NewPrivateKey(specResume.clientPriv)
	if err != nil {
		panic(err)
	}
	pub, err := ecdh.X25519().NewPublicKey(specResume.serverKey)
	if err != nil {
		panic(err)
	}
	shared, err := k.ECDH(pub)
	if err != nil {
		panic(err)
	}
	return shared
}

// specResumeSecret is the resume secret of a session without TLS, as
// SPEC.md §16.2 defines it: SHA-256("braid resume secret" ‖ 0x00 ‖
// X25519 shared secret ‖ resume_id ‖ client resume_key ‖ server
// resume_key).
func specResumeSecret() []byte {
	h := sha256.New()
	h.Write([]byte("braid resume secret\x00"))
	h.Write(specX25519Shared())
	h.Write(specResume.id)
	h.Write(specResume.clientKey)
	h.Write(specResume.serverKey)
	return h.Sum(nil)
}

// specResumeMACInput is what SPEC.md §16.4 says a MAC covers: label ‖
// uvarint(len(id)) ‖ id ‖ uvarint(len(cn)) ‖ cn ‖ uvarint(len(sn)) ‖ sn
// ‖ uint64 big-endian received.
func specResumeMACInput(label string, received uint64) []byte {
	b := []byte(label)
	for _, f := range [][]byte{specResume.id, specResume.clientNonce, specResume.serverNonce} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return binary.BigEndian.AppendUint64(b, received)
}

// specResumeMAC is HMAC-SHA256 under the secret of the MAC input.
func specResumeMAC(label string, received uint64) []byte {
	m := hmac.New(sha256.New, specResumeSecret())
	m.Write(specResumeMACInput(label, received))
	return m.Sum(nil)
}

// specValues are the byte strings SPEC.md shows as hex that are not
// frames, by the NAME of their ```hex value=NAME block, recomputed from
// the text. Every one must appear in SPEC.md exactly once.
var specValues = map[string][]byte{
	"client_resume_key":  specResume.clientKey,
	"server_resume_key":  specResume.serverKey,
	"shared_secret":      specX25519Shared(),
	"resume_secret":      specResumeSecret(),
	"client_proof_input": specResumeMACInput("braid resume client proof", specResume.clientReceived),
}

// specHexBlock is one ```hex frame=NAME or ```hex value=NAME block of
// SPEC.md.
type specHexBlock struct {
	kind string // "frame" or "value"
	name string
	line int    // line number of the opening fence
	wire []byte // the bytes, annotations and white space stripped
}

var specFenceRE = regexp.MustCompile("^```hex\\s+(frame|value)=([a-z_]+)\\s*$")

// readSpec returns SPEC.md's text.
func readSpec(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatalf("reading SPEC.md: %v", err)
	}
	return string(b)
}

// specHexBlocks extracts the hex example blocks from SPEC.md: a '#'
// starts an annotation running to the end of the line; everything else
// must be hex digits and white space.
func specHexBlocks(t *testing.T, spec string) []specHexBlock {
	t.Helper()
	var (
		blocks []specHexBlock
		cur    *specHexBlock
		digits strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(spec))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cur == nil {
			if strings.HasPrefix(line, "```hex") {
				m := specFenceRE.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("SPEC.md:%d: hex block without a valid frame=NAME or value=NAME marker: %q", n, line)
				}
				cur = &specHexBlock{kind: m[1], name: m[2], line: n}
				digits.Reset()
			}
			continue
		}
		if strings.TrimSpace(line) == "```" {
			wire, err := hex.DecodeString(digits.String())
			if err != nil {
				t.Fatalf("SPEC.md:%d: block %q: bad hex: %v", cur.line, cur.name, err)
			}
			cur.wire = wire
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, field := range strings.Fields(line) {
			if len(field) != 2 {
				t.Fatalf("SPEC.md:%d: block %q: %q is not a two-digit hex byte", n, cur.name, field)
			}
			digits.WriteString(field)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scanning SPEC.md: %v", err)
	}
	if cur != nil {
		t.Fatalf("SPEC.md:%d: block %q is not closed", cur.line, cur.name)
	}
	return blocks
}

// specFrameDiff describes how got differs from want, or returns "".
func specFrameDiff(got, want *frame.Frame) string {
	var d []string
	check := func(name string, ok bool, g, w any) {
		if !ok {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	check("Type", got.Type == want.Type, got.Type, want.Type)
	check("StreamID", got.StreamID == want.StreamID, got.StreamID, want.StreamID)
	check("Flags", got.Flags == want.Flags, got.Flags, want.Flags)
	check("WindowDelta", got.WindowDelta == want.WindowDelta, got.WindowDelta, want.WindowDelta)
	check("ErrorCode", got.ErrorCode == want.ErrorCode, got.ErrorCode, want.ErrorCode)
	check("Opaque", got.Opaque == want.Opaque, got.Opaque, want.Opaque)
	check("LastStreamID", got.LastStreamID == want.LastStreamID, got.LastStreamID, want.LastStreamID)
	check("HasSettings", got.HasSettings == want.HasSettings, got.HasSettings, want.HasSettings)
	check("Debug", bytes.Equal(got.Debug, want.Debug), fmt.Sprintf("%q", got.Debug), fmt.Sprintf("%q", want.Debug))
	check("Payload", bytes.Equal(got.Payload, want.Payload), fmt.Sprintf("%q", got.Payload), fmt.Sprintf("%q", want.Payload))
	gs, ws := &got.Settings, &want.Settings
	check("Settings.Magic", bytes.Equal(gs.Magic, ws.Magic), fmt.Sprintf("%q", gs.Magic), fmt.Sprintf("%q", ws.Magic))
	check("Settings.Version", gs.Version == ws.Version, gs.Version, ws.Version)
	check("Settings.InitialWindow", gs.InitialWindow == ws.InitialWindow, gs.InitialWindow, ws.InitialWindow)
	check("Settings.MaxFrameSize", gs.MaxFrameSize == ws.MaxFrameSize, gs.MaxFrameSize, ws.MaxFrameSize)
	check("Settings.MaxIncomingStreams", gs.MaxIncomingStreams == ws.MaxIncomingStreams, gs.MaxIncomingStreams, ws.MaxIncomingStreams)
	check("Settings.Compression", slices.Equal(gs.Compression, ws.Compression), gs.Compression, ws.Compression)
	check("Settings.SessionWindow", gs.SessionWindow == ws.SessionWindow, gs.SessionWindow, ws.SessionWindow)
	check("Settings.AcceptBacklog", gs.AcceptBacklog == ws.AcceptBacklog, gs.AcceptBacklog, ws.AcceptBacklog)
	check("Settings.Role", gs.Role == ws.Role, gs.Role, ws.Role)
	check("Settings.Nonce", bytes.Equal(gs.Nonce, ws.Nonce), fmt.Sprintf("%x", gs.Nonce), fmt.Sprintf("%x", ws.Nonce))
	check("Settings.ResumeKey", bytes.Equal(gs.ResumeKey, ws.ResumeKey), fmt.Sprintf("%x", gs.ResumeKey), fmt.Sprintf("%x", ws.ResumeKey))
	check("Settings.ResumeID", bytes.Equal(gs.ResumeID, ws.ResumeID), fmt.Sprintf("%x", gs.ResumeID), fmt.Sprintf("%x", ws.ResumeID))
	check("Received", got.Received == want.Received, got.Received, want.Received)
	check("HasResume", got.HasResume == want.HasResume, got.HasResume, want.HasResume)
	gr, wr := &got.Resume, &want.Resume
	check("Resume.Step", gr.Step == wr.Step, gr.Step, wr.Step)
	check("Resume.SessionID", bytes.Equal(gr.SessionID, wr.SessionID), fmt.Sprintf("%x", gr.SessionID), fmt.Sprintf("%x", wr.SessionID))
	check("Resume.Nonce", bytes.Equal(gr.Nonce, wr.Nonce), fmt.Sprintf("%x", gr.Nonce), fmt.Sprintf("%x", wr.Nonce))
	check("Resume.Received", gr.Received == wr.Received, gr.Received, wr.Received)
	check("Resume.MAC", bytes.Equal(gr.MAC, wr.MAC), fmt.Sprintf("%x", gr.MAC), fmt.Sprintf("%x", wr.MAC))
	return strings.Join(d, "; ")
}

// specToProto builds the generated message for f, independently of the
// codec, so the hex in SPEC.md is also checked against the reference
// protobuf library.
func specToProto(f *frame.Frame) *braidpb.Frame {
	m := &braidpb.Frame{
		Type:         braidpb.FrameType(f.Type),
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
			Step:      braidpb.ResumeStep(r.Step),
			SessionId: r.SessionID,
			Nonce:     r.Nonce,
			Received:  r.Received,
			Mac:       r.MAC,
		}
	}
	if f.HasSettings {
		s := &f.Settings
		m.Hello = &braidpb.Hello{
			Magic:              string(s.Magic),
			Version:            s.Version,
			InitialWindow:      s.InitialWindow,
			MaxFrameSize:       s.MaxFrameSize,
			MaxIncomingStreams: s.MaxIncomingStreams,
			SessionWindow:      s.SessionWindow,
			AcceptBacklog:      s.AcceptBacklog,
			Role:               braidpb.Role(s.Role),
			Nonce:              s.Nonce,
			ResumeKey:          s.ResumeKey,
			ResumeId:           s.ResumeID,
		}
		for _, c := range s.Compression {
			m.Hello.Compression = append(m.Hello.Compression, braidpb.Compression(c))
		}
	}
	return m
}

// TestSpecExamples decodes every hex example in SPEC.md and checks it
// against the frame it is meant to show, both ways: the codec decodes the
// bytes to the expected frame, and encodes the expected frame to exactly
// the bytes.
func TestSpecExamples(t *testing.T) {
	blocks := specHexBlocks(t, readSpec(t))
	seen := map[string]int{}
	for _, b := range blocks {
		if b.kind != "frame" {
			continue // TestSpecValues
		}
		seen[b.name]++
		want, ok := specExamples[b.name]
		if !ok {
			t.Errorf("SPEC.md:%d: hex block frame=%s has no expected frame in spec_test.go", b.line, b.name)
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			r := frame.NewReader(bytes.NewReader(b.wire), frame.MaxMaxFrameSize)
			got, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("SPEC.md:%d: ReadFrame: %v (bytes %x)", b.line, err, b.wire)
			}
			if d := specFrameDiff(got, &want); d != "" {
				t.Errorf("SPEC.md:%d: decoded %v; differs from expected: %s", b.line, got, d)
			}
			if _, err := r.ReadFrame(); err != io.EOF {
				t.Errorf("SPEC.md:%d: bytes after the frame: second ReadFrame gave %v, want io.EOF", b.line, err)
			}
			if enc := want.Append(nil); !bytes.Equal(enc, b.wire) {
				t.Errorf("SPEC.md:%d: encoder gives\n%x\nSPEC.md shows\n%x", b.line, enc, b.wire)
			}

			// The body is what the generated protobuf code reads and
			// writes, too.
			size, n := protowire.ConsumeVarint(b.wire)
			if n < 0 || size != uint64(len(b.wire)-n) {
				t.Fatalf("SPEC.md:%d: length prefix does not match the block's %d bytes", b.line, len(b.wire))
			}
			body := b.wire[n:]
			var m braidpb.Frame
			if err := proto.Unmarshal(body, &m); err != nil {
				t.Fatalf("SPEC.md:%d: proto.Unmarshal: %v", b.line, err)
			}
			if wm := specToProto(&want); !proto.Equal(&m, wm) {
				t.Errorf("SPEC.md:%d: proto.Unmarshal gives %v, want %v", b.line, &m, wm)
			}
			if pb, err := (proto.MarshalOptions{Deterministic: true}).Marshal(&m); err != nil || !bytes.Equal(pb, body) {
				t.Errorf("SPEC.md:%d: proto.Marshal gives %x, %v; SPEC.md body is %x", b.line, pb, err, body)
			}
		})
	}
	for name := range specExamples {
		switch seen[name] {
		case 0:
			t.Errorf("SPEC.md has no ```hex frame=%s block", name)
		case 1:
		default:
			t.Errorf("SPEC.md has %d ```hex frame=%s blocks, want 1", seen[name], name)
		}
	}
}

// TestSpecValues compares every ```hex value=NAME block in SPEC.md with
// the bytes the test computes for it from the text.
func TestSpecValues(t *testing.T) {
	seen := map[string]int{}
	for _, b := range specHexBlocks(t, readSpec(t)) {
		if b.kind != "value" {
			continue
		}
		seen[b.name]++
		want, ok := specValues[b.name]
		if !ok {
			t.Errorf("SPEC.md:%d: hex block value=%s has no expected value in spec_test.go", b.line, b.name)
			continue
		}
		if !bytes.Equal(b.wire, want) {
			t.Errorf("SPEC.md:%d: value=%s shows\n%x\nthe text gives\n%x", b.line, b.name, b.wire, want)
		}
	}
	for name := range specValues {
		if seen[name] != 1 {
			t.Errorf("SPEC.md has %d ```hex value=%s blocks, want 1", seen[name], name)
		}
	}
}

// specRow reports whether spec has a table row starting with the given
// first two cells: "| first | `second` |".
func specRow(spec, first, second string) bool {
	re := regexp.MustCompile(`(?m)^\|\s*` + regexp.QuoteMeta(first) + `\s*\|\s*` + "`" + regexp.QuoteMeta(second) + "`" + `\s*\|`)
	return re.MatchString(spec)
}

// TestSpecTables checks SPEC.md's tables of field numbers and enum values
// against the schema (the generated descriptors), and the schema's enum
// names against the frame package's names for them.
func TestSpecTables(t *testing.T) {
	spec := readSpec(t)

	for _, md := range []protoreflect.MessageDescriptor{
		(&braidpb.Frame{}).ProtoReflect().Descriptor(),
		(&braidpb.Hello{}).ProtoReflect().Descriptor(),
		(&braidpb.Resume{}).ProtoReflect().Descriptor(),
	} {
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if !specRow(spec, fmt.Sprint(fd.Number()), string(fd.Name())) {
				t.Errorf("SPEC.md has no table row \"| %d | `%s` |\" for %s", fd.Number(), fd.Name(), fd.FullName())
			}
		}
	}

	// goName gives the frame package's name for an enum value, in the
	// schema's spelling, or "" if the package does not define it.
	enums := []struct {
		ed     protoreflect.EnumDescriptor
		goName func(v uint32) string
	}{
		{braidpb.FrameType(0).Descriptor(), func(v uint32) string {
			if !frame.Type(v).Known() {
				return ""
			}
			return frame.Type(v).String()
		}},
		{braidpb.Flag(0).Descriptor(), func(v uint32) string {
			if v == 0 {
				return "FLAG_NONE" // no bit; the frame package has no name for it
			}
			return "FLAG_" + strings.ToUpper(frame.Flags(v).String())
		}},
		{braidpb.Compression(0).Descriptor(), func(v uint32) string {
			return "COMPRESSION_" + strings.ToUpper(frame.Compression(v).String())
		}},
		{braidpb.ErrorCode(0).Descriptor(), func(v uint32) string {
			return frame.ErrorCode(v).String()
		}},
		{braidpb.ResumeStep(0).Descriptor(), func(v uint32) string {
			if v == 0 {
				return "RESUME_STEP_UNSPECIFIED" // not a step; the frame package has no name for it
			}
			return "RESUME_" + frame.ResumeStep(v).String()
		}},
	}
	for _, e := range enums {
		values := e.ed.Values()
		for i := range values.Len() {
			ev := values.Get(i)
			v, name := uint32(ev.Number()), string(ev.Name())
			if g := e.goName(v); g != name {
				t.Errorf("%s = %d: frame package calls it %q", ev.FullName(), v, g)
			}
			if e.ed.Name() == "Flag" && v == 0 {
				continue // not a bit; SPEC.md's flag table lists bits only
			}
			if !specRow(spec, fmt.Sprint(v), name) {
				t.Errorf("SPEC.md has no table row \"| %d | `%s` |\" for %s", v, name, ev.FullName())
			}
		}
	}

	// Protocol limits quoted in SPEC.md.
	for _, s := range []string{
		fmt.Sprintf("`max_frame_size` − %d", frame.MaxDataOverhead),
		fmt.Sprintf("at most %d bytes of overhead", frame.MaxDataOverhead),
		fmt.Sprintf("at most %d bytes, value below 2^32", frame.MaxLengthPrefix),
		fmt.Sprintf("%d .. 16777216 (16 MiB)", frame.MinMaxFrameSize),
		fmt.Sprintf("at most %d entries", frame.MaxCompressionOffers),
		fmt.Sprintf("Codes **%#x (%d) and above**", uint32(frame.FirstApplicationCode), uint32(frame.FirstApplicationCode)),
	} {
		if !strings.Contains(spec, s) {
			t.Errorf("SPEC.md does not say %q", s)
		}
	}
	if frame.MaxMaxFrameSize != 16777216 {
		t.Errorf("frame.MaxMaxFrameSize = %d; SPEC.md says 16777216", frame.MaxMaxFrameSize)
	}
	if frame.Magic != "braid" || frame.Version != 1 {
		t.Errorf("frame.Magic, frame.Version = %q, %d; SPEC.md says \"braid\", 1", frame.Magic, frame.Version)
	}
}
