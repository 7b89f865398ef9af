package frame

import (
	"errors"
	"fmt"
	"strconv"
)

// Type is a frame's kind (proto: braid.v1.FrameType).
type Type uint32

// Frame types. Data is zero so that a DATA frame spends no bytes on it.
const (
	Data         Type = 0 // stream bytes; FlagSYN opens, FlagFIN half-closes
	Hello        Type = 1 // handshake; carries Settings
	WindowUpdate Type = 2 // credit for a stream, or the session (stream 0)
	Reset        Type = 3 // abort a stream in both directions
	Ping         Type = 4 // liveness and RTT; answered with FlagACK
	GoAway       Type = 5 // no new streams will be accepted
	Ack          Type = 6 // bytes of the peer's frame sequence received (Frame.Received)
	Resume       Type = 7 // resume handshake step (Frame.Resume)
)

var typeNames = [...]string{"DATA", "HELLO", "WINDOW_UPDATE", "RESET", "PING", "GOAWAY", "ACK", "RESUME"}

// String returns the name used in SPEC.md, e.g. "WINDOW_UPDATE".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "UNKNOWN_TYPE_" + strconv.FormatUint(uint64(t), 10)
}

// Known reports whether t is a type this version of the protocol defines.
func (t Type) Known() bool { return int(t) < len(typeNames) }

// Flags is the bit set in Frame.Flags (proto: braid.v1.Flag).
type Flags uint32

// Flag bits.
const (
	FlagFIN        Flags = 1 // DATA: sender's direction is finished
	FlagSYN        Flags = 2 // DATA: this frame opens the stream
	FlagACK        Flags = 4 // PING: this is the answer; empty DATA: stream accepted
	FlagCompressed Flags = 8 // DATA: payload is compressed
)

// Has reports whether all bits of g are set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// String lists the set flags, e.g. "SYN|FIN".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var b []byte
	add := func(bit Flags, name string) {
		if f&bit != 0 {
			if len(b) > 0 {
				b = append(b, '|')
			}
			b = append(b, name...)
			f &^= bit
		}
	}
	add(FlagSYN, "SYN")
	add(FlagFIN, "FIN")
	add(FlagACK, "ACK")
	add(FlagCompressed, "COMPRESSED")
	if f != 0 {
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, uint64(f), 16)
	}
	return string(b)
}

// ErrorCode is the reason carried by RESET and GOAWAY (proto:
// braid.v1.ErrorCode). Codes from 0x100 up are for applications.
type ErrorCode uint32

// Error codes defined by the protocol.
const (
	NoError          ErrorCode = 0
	ProtocolError    ErrorCode = 1
	InternalError    ErrorCode = 2
	FlowControlError ErrorCode = 3
	StreamClosed     ErrorCode = 4
	FrameSizeError   ErrorCode = 5
	RefusedStream    ErrorCode = 6
	Cancel           ErrorCode = 7
	CompressionError ErrorCode = 8
	KeepAliveTimeout ErrorCode = 9
	HandshakeError   ErrorCode = 10

	// FirstApplicationCode is the lowest code reserved for applications.
	FirstApplicationCode ErrorCode = 0x100
)

var codeNames = [...]string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
	"COMPRESSION_ERROR", "KEEPALIVE_TIMEOUT", "HANDSHAKE_ERROR",
}

// String returns the SPEC.md name of c, or "APPLICATION_ERROR_0x…" /
// "UNKNOWN_ERROR_…" for codes the protocol does not define.
func (c ErrorCode) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	if c >= FirstApplicationCode {
		return "APPLICATION_ERROR_0x" + strconv.FormatUint(uint64(c), 16)
	}
	return "UNKNOWN_ERROR_" + strconv.FormatUint(uint64(c), 10)
}

// Compression names a payload compression algorithm (proto:
// braid.v1.Compression).
type Compression uint32

// Compression algorithms.
const (
	CompressionNone Compression = 0
	CompressionZstd Compression = 1
)

// String returns "none", "zstd" or "unknown(N)".
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	}
	return "unknown(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Protocol constants.
const (
	// Magic is the value of Settings.Magic in every HELLO.
	Magic = "braid"
	// Version is the protocol version this package speaks.
	Version = 1
	// MaxLengthPrefix is the longest length prefix accepted, in bytes
	// (a varint of a value below 2^32).
	MaxLengthPrefix = 5
	// MinMaxFrameSize is the smallest max_frame_size a peer may announce.
	MinMaxFrameSize = 1024
	// MaxMaxFrameSize is the largest max_frame_size a peer may announce,
	// and the largest frame body any Reader accepts.
	MaxMaxFrameSize = 16 << 20
	// MaxDataHeader is the most bytes AppendDataHeader writes: length
	// prefix, stream id, flags and the payload's tag and length.
	MaxDataHeader = MaxLengthPrefix + (1 + 5) + (1 + 5) + (1 + 5)
	// MaxDataOverhead is the most a DATA frame body spends on anything but
	// its payload. A DATA payload fits in a frame of max size M when it is
	// at most M-MaxDataOverhead bytes.
	MaxDataOverhead = MaxDataHeader - MaxLengthPrefix
	// MaxCompressionOffers bounds Settings.Compression on decode.
	MaxCompressionOffers = 16
	// MaxNonce bounds Settings.Nonce on decode.
	MaxNonce = 64
	// MaxResumeField bounds, on decode, each byte field of the resume
	// machinery: Settings.ResumeKey and Settings.ResumeID, and
	// ResumeInfo.SessionID, Nonce and MAC.
	MaxResumeField = 64
)

// Settings is the body of a HELLO frame (proto: braid.v1.Hello).
type Settings struct {
	Magic              []byte        // must equal Magic
	Version            uint32        // protocol version
	InitialWindow      uint32        // per-stream receive window at open
	MaxFrameSize       uint32        // largest frame body the sender accepts
	MaxIncomingStreams uint32        // streams the peer may have open towards the sender
	Compression        []Compression // accepted algorithms, preferred first
	SessionWindow      uint32        // session-wide receive window
	AcceptBacklog      uint32        // unaccepted peer streams allowed; 0 = not announced
	Role               Role          // which side sent it; RoleUnspecified = not announced
	Nonce              []byte        // random, fresh per HELLO; at most MaxNonce bytes
	ResumeKey          []byte        // X25519 public key, fresh per session, when resumption is offered/accepted; at most MaxResumeField bytes
	ResumeID           []byte        // server only: the session's id, when it accepts resumption; at most MaxResumeField bytes
}

// ResumeStep is the step of the resume handshake a RESUME frame is (proto:
// braid.v1.ResumeStep). The client sends REQUEST and PROOF, the server
// CHALLENGE and then ACCEPTED or REFUSED; see SPEC.md §16.
type ResumeStep uint32

// Resume handshake steps. Zero is not a step.
const (
	ResumeRequest   ResumeStep = 1 // client: re-attach to SessionID; fresh Nonce
	ResumeChallenge ResumeStep = 2 // server: session known; fresh Nonce
	ResumeProof     ResumeStep = 3 // client: MAC over both nonces; Received
	ResumeAccepted  ResumeStep = 4 // server: the session continues here
	ResumeRefused   ResumeStep = 5 // server: cannot resume; reason in Frame.Debug
)

var resumeStepNames = [...]string{"", "REQUEST", "CHALLENGE", "PROOF", "ACCEPTED", "REFUSED"}

// String returns "REQUEST", "CHALLENGE", "PROOF", "ACCEPTED", "REFUSED",
// or "ResumeStep(N)" for any other value.
func (s ResumeStep) String() string {
	if s > 0 && int(s) < len(resumeStepNames) {
		return resumeStepNames[s]
	}
	return "ResumeStep(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// ResumeInfo is the body of a RESUME frame (proto: braid.v1.Resume). Which
// fields a step uses is in SPEC.md §16; the others are zero.
type ResumeInfo struct {
	Step      ResumeStep
	SessionID []byte // the server's Settings.ResumeID; at most MaxResumeField bytes
	Nonce     []byte // fresh random bytes; at most MaxResumeField bytes
	Received  uint64 // bytes of the peer's frame sequence received
	MAC       []byte // the sender's proof; at most MaxResumeField bytes
}

// Role is which side of a session sent a HELLO (proto: braid.v1.Role). A
// session refuses a peer that announces its own role: two clients (or two
// servers) facing each other fail in the handshake rather than at the
// first stream.
type Role uint32

// Roles.
const (
	RoleUnspecified Role = 0 // not announced (a peer from before roles)
	RoleClient      Role = 1
	RoleServer      Role = 2
)

// String returns "client", "server", "unspecified", or the number.
func (r Role) String() string {
	switch r {
	case RoleUnspecified:
		return "unspecified"
	case RoleClient:
		return "client"
	case RoleServer:
		return "server"
	}
	return fmt.Sprintf("Role(%d)", uint32(r))
}

// Frame is one decoded or to-be-encoded frame. Which fields matter
// depends on Type; the rest are zero. See SPEC.md.
//
// A Frame is a plain value and is not safe for concurrent use.
type Frame struct {
	Type         Type
	StreamID     uint32
	Flags        Flags
	WindowDelta  uint32     // WINDOW_UPDATE
	ErrorCode    ErrorCode  // RESET, GOAWAY
	Opaque       uint64     // PING
	LastStreamID uint32     // GOAWAY
	HasSettings  bool       // whether the hello field is present
	Settings     Settings   // HELLO
	Debug        []byte     // GOAWAY, RESUME (REFUSED) reason text (UTF-8)
	Received     uint64     // ACK: bytes of the peer's frame sequence received
	HasResume    bool       // whether the resume field is present
	Resume       ResumeInfo // RESUME
	Payload      []byte     // DATA
}

// String describes f for logs and test failures.
func (f *Frame) String() string {
	switch f.Type {
	case Data:
		return fmt.Sprintf("DATA stream=%d flags=%v len=%d", f.StreamID, f.Flags, len(f.Payload))
	case WindowUpdate:
		return fmt.Sprintf("WINDOW_UPDATE stream=%d delta=%d", f.StreamID, f.WindowDelta)
	case Reset:
		return fmt.Sprintf("RESET stream=%d code=%v", f.StreamID, f.ErrorCode)
	case Ping:
		return fmt.Sprintf("PING flags=%v opaque=%#x", f.Flags, f.Opaque)
	case GoAway:
		return fmt.Sprintf("GOAWAY last=%d code=%v debug=%q", f.LastStreamID, f.ErrorCode, f.Debug)
	case Hello:
		s := &f.Settings
		str := fmt.Sprintf("HELLO magic=%q version=%d window=%d maxframe=%d maxstreams=%d session=%d compression=%v backlog=%d role=%v",
			s.Magic, s.Version, s.InitialWindow, s.MaxFrameSize, s.MaxIncomingStreams, s.SessionWindow, s.Compression, s.AcceptBacklog, s.Role)
		if len(s.ResumeKey) > 0 || len(s.ResumeID) > 0 {
			// The key is a secret: its length only.
			str += fmt.Sprintf(" resume_key=%dB resume_id=%x", len(s.ResumeKey), s.ResumeID)
		}
		return str
	case Ack:
		return fmt.Sprintf("ACK received=%d", f.Received)
	case Resume:
		r := &f.Resume
		str := fmt.Sprintf("RESUME %v session=%x nonce=%dB received=%d mac=%dB", r.Step, r.SessionID, len(r.Nonce), r.Received, len(r.MAC))
		if len(f.Debug) > 0 {
			str += fmt.Sprintf(" debug=%q", f.Debug)
		}
		return str
	}
	return fmt.Sprintf("%v stream=%d flags=%v", f.Type, f.StreamID, f.Flags)
}

// Sentinel errors. Decoding errors wrap ErrMalformed or ErrFrameTooLarge
// with detail; match them with errors.Is.
var (
	// ErrMalformed: the bytes are not a valid braid frame.
	ErrMalformed = errors.New("braid: malformed frame")
	// ErrFrameTooLarge: a length prefix exceeds the maximum frame size.
	ErrFrameTooLarge = errors.New("braid: frame exceeds maximum frame size")
)

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }
