package mapping

import "time"

// noteExternalLocked records e's external endpoint after it was set: the
// first port it was given (Mapping.Given, which IGD lookups still
// accept), and what LAN clients were last told (entry.told). When the
// endpoint moved from what they were told and tell is set, subscribers
// get EventMappingMoved; a NAT-PMP mapping that moved to another port
// also restarts the epoch: NAT-PMP has no per-mapping notice, and its
// clients ask again only when the epoch says the gateway lost state (RFC
// 6886 §3.2.1, §3.7: a mapping at its old port is lost state). A change
// of the upstream's external address alone (tell false) is announced to
// everyone by EventExternalAddr instead.
func (c *Core) noteExternalLocked(e *entry, tell bool) {
	x := e.External
	if !x.IsValid() || e.IsPinhole() {
		return
	}
	was := e.told
	if e.Given == 0 {
		e.Given = x.Port()
		if was.IsValid() {
			e.Given = was.Port()
		}
	}
	e.told = x
	if !was.IsValid() || was == x || !tell {
		return
	}
	c.log.Info("mapping moved", "proto", e.Proto, "internal", e.Internal, "client", e.Client, "origin", e.Origin,
		"external", x, "was", was)
	if e.Origin == OriginNATPMP && was.Port() != x.Port() {
		c.epochStart = time.Now()
	}
	c.emitLocked(Event{Kind: EventMappingMoved, Mapping: e.view(c.upKind), Was: was})
	c.dirtyLocked()
}
