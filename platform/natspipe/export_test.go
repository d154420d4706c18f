package natspipe

// FrameCost is exported for tests that reason about credit.
const FrameCost = frameCost

// Buffered is the credit this end holds for its reader: data and controls received and not yet read, in
// cost units (body bytes plus FrameCost per frame). Credit bounds it by the window.
func (p *Pipe) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.received - p.consumed)
}

// Sent is the credit this end has used, in the same units.
func (p *Pipe) Sent() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return int(p.sent)
}

// WaitingForCredit says whether a writer is blocked because the peer granted no more credit.
func (p *Pipe) WaitingForCredit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wwaiting > 0 && p.heard
}

// Blocked says whether a writer is blocked, for credit or for the peer to join.
func (p *Pipe) Blocked() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wwaiting > 0
}

// SeqOut is the sequence number of the last frame this end published.
func (p *Pipe) SeqOut() uint64 {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.seqOut
}

// PendingMsgs is how many messages wait in the subscription, not yet handed to the pipe.
func (p *Pipe) PendingMsgs() int {
	n, _, _ := p.sub.Pending()
	return n
}

// Forge encodes a data frame as a peer would, with any sequence number and protocol version.
func Forge(ver byte, seq uint64, body []byte) []byte {
	b := appendFrame(nil, frameData, seq, body)
	b[0] = ver
	return b
}
