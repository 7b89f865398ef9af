package frame

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of braid.v1.Frame.
const (
	fieldType         protowire.Number = 1
	fieldStreamID     protowire.Number = 2
	fieldFlags        protowire.Number = 3
	fieldWindowDelta  protowire.Number = 4
	fieldErrorCode    protowire.Number = 5
	fieldOpaque       protowire.Number = 6
	fieldLastStreamID protowire.Number = 7
	fieldHello        protowire.Number = 8
	fieldDebug        protowire.Number = 9
	fieldReceived     protowire.Number = 10
	fieldResume       protowire.Number = 11
	fieldPayload      protowire.Number = 15
)

// Field numbers of braid.v1.Hello.
const (
	helloMagic              protowire.Number = 1
	helloVersion            protowire.Number = 2
	helloInitialWindow      protowire.Number = 3
	helloMaxFrameSize       protowire.Number = 4
	helloMaxIncomingStreams protowire.Number = 5
	helloCompression        protowire.Number = 6
	helloSessionWindow      protowire.Number = 7
	helloAcceptBacklog      protowire.Number = 8
	helloRole               protowire.Number = 9
	helloNonce              protowire.Number = 10
	helloResumeKey          protowire.Number = 11
	helloResumeID           protowire.Number = 12
)

// Field numbers of braid.v1.Resume.
const (
	resumeStep      protowire.Number = 1
	resumeSessionID protowire.Number = 2
	resumeNonce     protowire.Number = 3
	resumeReceived  protowire.Number = 4
	resumeMAC       protowire.Number = 5
)

// One-byte tags of the fields a DATA frame uses.
const (
	tagStreamID = byte(fieldStreamID<<3) | byte(protowire.VarintType)
	tagFlags    = byte(fieldFlags<<3) | byte(protowire.VarintType)
	tagPayload  = byte(fieldPayload<<3) | byte(protowire.BytesType)
)

// enumVarint is how protobuf encodes an int32 enum value: sign-extended to
// 64 bits. Values below 2^31 encode as themselves.
func enumVarint(v uint32) uint64 { return uint64(int64(int32(v))) }

func sizeUint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v) // every field number here has a 1-byte tag
}

func sizeBytes(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeBytes(n)
}

func appendUint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, byte(num<<3)|byte(protowire.VarintType))
	return protowire.AppendVarint(b, v)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = append(b, byte(num<<3)|byte(protowire.BytesType))
	b = protowire.AppendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// packedSize is the byte length of the packed compression list's contents.
func (s *Settings) packedSize() int {
	n := 0
	for _, c := range s.Compression {
		n += protowire.SizeVarint(enumVarint(uint32(c)))
	}
	return n
}

// Size returns the encoded length of s as a Hello message.
func (s *Settings) Size() int {
	return sizeBytes(len(s.Magic)) +
		sizeUint(helloVersion, uint64(s.Version)) +
		sizeUint(helloInitialWindow, uint64(s.InitialWindow)) +
		sizeUint(helloMaxFrameSize, uint64(s.MaxFrameSize)) +
		sizeUint(helloMaxIncomingStreams, uint64(s.MaxIncomingStreams)) +
		sizeBytes(s.packedSize()) +
		sizeUint(helloSessionWindow, uint64(s.SessionWindow)) +
		sizeUint(helloAcceptBacklog, uint64(s.AcceptBacklog)) +
		sizeUint(helloRole, enumVarint(uint32(s.Role))) +
		sizeBytes(len(s.Nonce)) +
		sizeBytes(len(s.ResumeKey)) +
		sizeBytes(len(s.ResumeID))
}

func (s *Settings) appendTo(b []byte) []byte {
	b = appendBytes(b, helloMagic, s.Magic)
	b = appendUint(b, helloVersion, uint64(s.Version))
	b = appendUint(b, helloInitialWindow, uint64(s.InitialWindow))
	b = appendUint(b, helloMaxFrameSize, uint64(s.MaxFrameSize))
	b = appendUint(b, helloMaxIncomingStreams, uint64(s.MaxIncomingStreams))
	if n := s.packedSize(); n > 0 {
		b = append(b, byte(helloCompression<<3)|byte(protowire.BytesType))
		b = protowire.AppendVarint(b, uint64(n))
		for _, c := range s.Compression {
			b = protowire.AppendVarint(b, enumVarint(uint32(c)))
		}
	}
	b = appendUint(b, helloSessionWindow, uint64(s.SessionWindow))
	b = appendUint(b, helloAcceptBacklog, uint64(s.AcceptBacklog))
	b = appendUint(b, helloRole, enumVarint(uint32(s.Role)))
	b = appendBytes(b, helloNonce, s.Nonce)
	b = appendBytes(b, helloResumeKey, s.ResumeKey)
	return appendBytes(b, helloResumeID, s.ResumeID)
}

// size returns the encoded length of r as a Resume message.
func (r *ResumeInfo) size() int {
	return sizeUint(resumeStep, enumVarint(uint32(r.Step))) +
		sizeBytes(len(r.SessionID)) +
		sizeBytes(len(r.Nonce)) +
		sizeUint(resumeReceived, r.Received) +
		sizeBytes(len(r.MAC))
}

func (r *ResumeInfo) appendTo(b []byte) []byte {
	b = appendUint(b, resumeStep, enumVarint(uint32(r.Step)))
	b = appendBytes(b, resumeSessionID, r.SessionID)
	b = appendBytes(b, resumeNonce, r.Nonce)
	b = appendUint(b, resumeReceived, r.Received)
	return appendBytes(b, resumeMAC, r.MAC)
}

// BodySize returns the length of f's body: its protobuf encoding, without
// the length prefix.
func (f *Frame) BodySize() int {
	n := sizeUint(fieldType, enumVarint(uint32(f.Type))) +
		sizeUint(fieldStreamID, uint64(f.StreamID)) +
		sizeUint(fieldFlags, uint64(f.Flags)) +
		sizeUint(fieldWindowDelta, uint64(f.WindowDelta)) +
		sizeUint(fieldErrorCode, uint64(f.ErrorCode)) +
		sizeUint(fieldOpaque, f.Opaque) +
		sizeUint(fieldLastStreamID, uint64(f.LastStreamID))
	if f.HasSettings {
		n += 1 + protowire.SizeBytes(f.Settings.Size())
	}
	n += sizeBytes(len(f.Debug)) + sizeUint(fieldReceived, f.Received)
	if f.HasResume {
		n += 1 + protowire.SizeBytes(f.Resume.size())
	}
	return n + sizeBytes(len(f.Payload))
}

// Size returns the length of f on the wire: length prefix plus body.
func (f *Frame) Size() int {
	n := f.BodySize()
	return protowire.SizeVarint(uint64(n)) + n
}

// AppendBody appends f's body (the protobuf encoding of the Frame message,
// fields in field-number order, zero values omitted) to b. The result is
// byte-for-byte what proto.Marshal produces for the same message.
func (f *Frame) AppendBody(b []byte) []byte {
	b = appendUint(b, fieldType, enumVarint(uint32(f.Type)))
	b = appendUint(b, fieldStreamID, uint64(f.StreamID))
	b = appendUint(b, fieldFlags, uint64(f.Flags))
	b = appendUint(b, fieldWindowDelta, uint64(f.WindowDelta))
	b = appendUint(b, fieldErrorCode, uint64(f.ErrorCode))
	b = appendUint(b, fieldOpaque, f.Opaque)
	b = appendUint(b, fieldLastStreamID, uint64(f.LastStreamID))
	if f.HasSettings {
		b = append(b, byte(fieldHello<<3)|byte(protowire.BytesType))
		b = protowire.AppendVarint(b, uint64(f.Settings.Size()))
		b = f.Settings.appendTo(b)
	}
	b = appendBytes(b, fieldDebug, f.Debug)
	b = appendUint(b, fieldReceived, f.Received)
	if f.HasResume {
		b = append(b, byte(fieldResume<<3)|byte(protowire.BytesType))
		b = protowire.AppendVarint(b, uint64(f.Resume.size()))
		b = f.Resume.appendTo(b)
	}
	return appendBytes(b, fieldPayload, f.Payload)
}

// Append appends the wire form of f (length prefix, then body) to b and
// returns the extended slice. It does not check limits: keeping a frame
// within the peer's maximum frame size is the caller's job.
func (f *Frame) Append(b []byte) []byte {
	b = protowire.AppendVarint(b, uint64(f.BodySize()))
	return f.AppendBody(b)
}

// AppendDataHeader appends everything of a DATA frame that comes before
// its payload: length prefix, stream id, flags, and the payload's tag and
// length. Writing the result followed by payloadLen bytes of payload gives
// exactly what Append gives for the same DATA frame, so the payload can go
// to the connection straight from the caller's slice (net.Buffers). It
// appends at most MaxDataHeader bytes.
func AppendDataHeader(b []byte, streamID uint32, flags Flags, payloadLen int) []byte {
	body := sizeUint(fieldStreamID, uint64(streamID)) + sizeUint(fieldFlags, uint64(flags)) + sizeBytes(payloadLen)
	b = protowire.AppendVarint(b, uint64(body))
	if streamID != 0 {
		b = append(b, tagStreamID)
		b = protowire.AppendVarint(b, uint64(streamID))
	}
	if flags != 0 {
		b = append(b, tagFlags)
		b = protowire.AppendVarint(b, uint64(flags))
	}
	if payloadLen > 0 {
		b = append(b, tagPayload)
		b = protowire.AppendVarint(b, uint64(payloadLen))
	}
	return b
}

// AppendWindowUpdate appends a WINDOW_UPDATE frame (stream 0 = session).
// It gives exactly what Frame.Append gives for the same frame, without
// building a Frame.
func AppendWindowUpdate(b []byte, streamID, delta uint32) []byte {
	const tagType = byte(fieldType<<3) | byte(protowire.VarintType)
	body := 2 + sizeUint(fieldStreamID, uint64(streamID)) + sizeUint(fieldWindowDelta, uint64(delta))
	b = append(b, byte(body), tagType, byte(WindowUpdate)) // body ≤ 14: a 1-byte prefix
	b = appendUint(b, fieldStreamID, uint64(streamID))
	return appendUint(b, fieldWindowDelta, uint64(delta))
}

// Parse decodes one frame body (the bytes after the length prefix) into
// f, overwriting it. f's slices alias body. Fields appear in any order;
// for a field given more than once the last value wins (for the hello
// message, occurrences merge), as protobuf specifies. Unknown fields, and
// known field numbers with an unexpected wire type, are skipped. Strings
// (magic, debug) must be valid UTF-8, as proto3 requires.
//
// Parse is stricter than protobuf in one way: it bounds what a peer can
// make it hold. More than MaxCompressionOffers compression offers, a
// nonce longer than MaxNonce, or a resume key, resume id, session id,
// resume nonce or MAC longer than MaxResumeField bytes (in the value that
// stands: a later occurrence of a field replaces an earlier one) is
// malformed.
//
// Parse never panics; an error wraps ErrMalformed.
func Parse(f *Frame, body []byte) error {
	comp := f.Settings.Compression[:0]
	*f = Frame{}
	f.Settings.Compression = comp
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 || num > protowire.MaxValidNumber {
			return malformed("bad field tag")
		}
		body = body[n:]
		switch {
		case typ == protowire.VarintType && num >= fieldType && num <= fieldLastStreamID:
			v, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return malformed("bad varint")
			}
			body = body[n:]
			switch num {
			case fieldType:
				f.Type = Type(uint32(v))
			case fieldStreamID:
				f.StreamID = uint32(v)
			case fieldFlags:
				f.Flags = Flags(uint32(v))
			case fieldWindowDelta:
				f.WindowDelta = uint32(v)
			case fieldErrorCode:
				f.ErrorCode = ErrorCode(uint32(v))
			case fieldOpaque:
				f.Opaque = v
			case fieldLastStreamID:
				f.LastStreamID = uint32(v)
			}
			continue
		case typ == protowire.BytesType && (num == fieldHello || num == fieldDebug || num == fieldPayload || num == fieldResume):
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return malformed("bad length-delimited field")
			}
			body = body[n:]
			switch num {
			case fieldHello:
				f.HasSettings = true
				if err := parseSettings(&f.Settings, v); err != nil {
					return err
				}
			case fieldDebug:
				if !utf8.Valid(v) {
					return malformed("debug text is not UTF-8")
				}
				f.Debug = v
			case fieldPayload:
				f.Payload = v
			case fieldResume:
				f.HasResume = true
				if err := parseResume(&f.Resume, v); err != nil {
					return err
				}
			}
			continue
		case typ == protowire.VarintType && num == fieldReceived:
			v, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return malformed("bad varint")
			}
			body = body[n:]
			f.Received = v
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			return malformed("bad unknown field")
		}
		body = body[n:]
	}
	// The length limits apply to the values that stand (protobuf's last
	// occurrence wins), not to occurrences a later one replaces.
	h, r := &f.Settings, &f.Resume
	switch {
	case len(h.Nonce) > MaxNonce:
		return malformed("hello nonce too long")
	case len(h.ResumeKey) > MaxResumeField || len(h.ResumeID) > MaxResumeField:
		return malformed("hello resume key or id too long")
	case len(r.SessionID) > MaxResumeField || len(r.Nonce) > MaxResumeField || len(r.MAC) > MaxResumeField:
		return malformed("resume session id, nonce or mac too long")
	}
	return nil
}

// parseDataHeader parses the stream id and flags of a DATA frame's header
// (as peekDataHeader found it: varint fields only, payload excluded).
func parseDataHeader(f *Frame, b []byte) error {
	for len(b) > 0 {
		num, _, n := protowire.ConsumeTag(b)
		if n < 0 {
			return malformed("bad field tag")
		}
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return malformed("bad varint")
		}
		b = b[n+m:]
		switch num {
		case fieldStreamID:
			f.StreamID = uint32(v)
		case fieldFlags:
			f.Flags = Flags(uint32(v))
		}
	}
	return nil
}

// parseSettings merges a Hello message body into s.
func parseSettings(s *Settings, b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return malformed("bad hello field tag")
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && num >= helloVersion && num <= helloRole:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("bad hello varint")
			}
			b = b[n:]
			switch num {
			case helloVersion:
				s.Version = uint32(v)
			case helloInitialWindow:
				s.InitialWindow = uint32(v)
			case helloMaxFrameSize:
				s.MaxFrameSize = uint32(v)
			case helloMaxIncomingStreams:
				s.MaxIncomingStreams = uint32(v)
			case helloCompression: // unpacked repeated element
				if err := s.addCompression(v); err != nil {
					return err
				}
			case helloSessionWindow:
				s.SessionWindow = uint32(v)
			case helloAcceptBacklog:
				s.AcceptBacklog = uint32(v)
			case helloRole:
				s.Role = Role(uint32(v)) // values this side does not know are kept
			}
			continue
		case typ == protowire.BytesType && num == helloMagic:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("bad hello magic")
			}
			if !utf8.Valid(v) {
				return malformed("hello magic is not UTF-8")
			}
			s.Magic = v
			b = b[n:]
			continue
		case typ == protowire.BytesType && num == helloNonce:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("bad hello nonce")
			}
			s.Nonce = v
			b = b[n:]
			continue
		case typ == protowire.BytesType && (num == helloResumeKey || num == helloResumeID):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("bad hello resume key or id")
			}
			if num == helloResumeKey {
				s.ResumeKey = v
			} else {
				s.ResumeID = v
			}
			b = b[n:]
			continue
		case typ == protowire.BytesType && num == helloCompression: // packed
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("bad hello compression list")
			}
			b = b[n:]
			for len(v) > 0 {
				c, m := protowire.ConsumeVarint(v)
				if m < 0 {
					return malformed("bad hello compression entry")
				}
				v = v[m:]
				if err := s.addCompression(c); err != nil {
					return err
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return malformed("bad unknown hello field")
		}
		b = b[n:]
	}
	return nil
}

// parseResume merges a Resume message body into r.
func parseResume(r *ResumeInfo, b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num > protowire.MaxValidNumber {
			return malformed("bad resume field tag")
		}
		b = b[n:]
		switch {
		case typ == protowire.VarintType && (num == resumeStep || num == resumeReceived):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return malformed("bad resume varint")
			}
			b = b[n:]
			if num == resumeStep {
				r.Step = ResumeStep(uint32(v)) // values this side does not know are kept
			} else {
				r.Received = v
			}
			continue
		case typ == protowire.BytesType && (num == resumeSessionID || num == resumeNonce || num == resumeMAC):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return malformed("bad resume session id, nonce or mac")
			}
			b = b[n:]
			switch num {
			case resumeSessionID:
				r.SessionID = v
			case resumeNonce:
				r.Nonce = v
			case resumeMAC:
				r.MAC = v
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return malformed("bad unknown resume field")
		}
		b = b[n:]
	}
	return nil
}

func (s *Settings) addCompression(v uint64) error {
	if len(s.Compression) >= MaxCompressionOffers {
		return malformed("too many compression offers")
	}
	s.Compression = append(s.Compression, Compression(uint32(v)))
	return nil
}
