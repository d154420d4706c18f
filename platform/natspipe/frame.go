package natspipe

import (
	"encoding/binary"
	"fmt"
)

// A frame is one NATS message: a fixed header in the payload, then the frame's body. The header lives in the
// payload, not in NATS headers, because parsing NATS headers costs an allocation per message on the hottest
// path and the frame needs only ten bytes.
//
//	byte 0     protocol version (version)
//	byte 1     frame type
//	bytes 2-9  sequence number, big endian; 0 only on hello frames, then 1, 2, 3, … per direction
const (
	version   = 1
	headerLen = 10
)

type frameType byte

const (
	// frameHello announces a subscribed end and carries its initial credit. It is the only unsequenced frame:
	// it is re-sent until the peer is heard, and copies that arrive before the peer subscribed are lost by
	// design, so it cannot take part in the sequence.
	frameHello frameType = iota + 1
	// frameData carries stream bytes; it costs its length plus frameCost of credit.
	frameData
	// frameGrant raises the sender's credit to an absolute byte offset (body: 8 bytes, big endian). Absolute
	// offsets make a repeated or overtaken grant harmless.
	frameGrant
	// frameControl carries an out-of-band message that is delivered in order with data; it costs credit like
	// data so that a flood of them is as bounded as a flood of bytes.
	frameControl
	// frameEOF half-closes: no data follows in this direction.
	frameEOF
	// frameClose ends both directions. An empty body is a clean close; otherwise the body is the reason the
	// sender gave up (a reset), which the peer reports instead of a clean EOF.
	frameClose
	// framePing proves liveness when there is nothing else to send.
	framePing
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameData:
		return "data"
	case frameGrant:
		return "grant"
	case frameControl:
		return "control"
	case frameEOF:
		return "eof"
	case frameClose:
		return "close"
	case framePing:
		return "ping"
	}
	return fmt.Sprintf("frame(%d)", byte(t))
}

// frameCost is the credit a data or control frame costs beyond its body. A message waiting in the NATS client
// costs about this much memory (the nats.Msg, its subject and our header) whatever its size; charging it keeps
// a peer that writes one byte at a time inside the same memory bound as one that writes whole chunks.
const frameCost = 128

// appendFrame appends an encoded frame to dst.
func appendFrame(dst []byte, t frameType, seq uint64, body []byte) []byte {
	dst = append(dst, version, byte(t))
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, body...)
}

// parseFrame splits a message payload; the body aliases data.
func parseFrame(data []byte) (frameType, uint64, []byte, error) {
	if len(data) < headerLen {
		return 0, 0, nil, fmt.Errorf("%w: %d-byte message is shorter than a frame header", ErrProtocol, len(data))
	}
	if data[0] != version {
		return 0, 0, nil, fmt.Errorf("%w: peer speaks version %d, this end %d", ErrProtocol, data[0], version)
	}
	t := frameType(data[1])
	if t < frameHello || t > framePing {
		return 0, 0, nil, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, data[1])
	}
	return t, binary.BigEndian.Uint64(data[2:headerLen]), data[headerLen:], nil
}

// offsetBody is the body of hello and grant frames.
func offsetBody(buf *[8]byte, off uint64) []byte {
	binary.BigEndian.PutUint64(buf[:], off)
	return buf[:]
}

func parseOffset(body []byte) (uint64, error) {
	if len(body) != 8 {
		return 0, fmt.Errorf("%w: credit body of %d bytes", ErrProtocol, len(body))
	}
	return binary.BigEndian.Uint64(body), nil
}
