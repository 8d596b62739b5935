package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
)

// PCP is the Backend of the provider's PCP server (KindPCP) or of a
// NAT-PMP gateway (KindNATPMP): pcpclient speaking one or the other.
type PCP struct {
	c      *pcpclient.Client
	kind   Kind
	events chan Event
	wg     sync.WaitGroup
	once   sync.Once
}

var _ Backend = (*PCP)(nil)

// NewPCP makes the backend. cfg.Protocol ProtocolNATPMP makes a NAT-PMP
// gateway's (KindNATPMP); the others a PCP server's.
func NewPCP(cfg pcpclient.Config) (*PCP, error) {
	c, err := pcpclient.New(cfg)
	if err != nil {
		return nil, err
	}
	p := &PCP{c: c, kind: KindPCP, events: make(chan Event, 64)}
	if cfg.Protocol == pcpclient.ProtocolNATPMP {
		p.kind = KindNATPMP
	}
	p.wg.Add(1)
	go p.pump()
	return p, nil
}

// pump turns the client's events into upstream events until it closes.
func (p *PCP) pump() {
	defer p.wg.Done()
	defer close(p.events)
	for ev := range p.c.Events() {
		out := Event{Upstream: p.kind, Server: addrPortString(ev.Server), External: ev.External}
		switch ev.Kind {
		case pcpclient.EventStateLost:
			out.Kind, out.Spread = EventStateLost, true
		case pcpclient.EventExternalChanged:
			out.Kind = EventExternalChanged
			if ev.Mapping != nil && ev.Request != nil {
				res, req := fromPCP(*ev.Mapping), MapRequest(*ev.Request)
				out.Mapping, out.Request = &res, &req
			}
		case pcpclient.EventUnreachable:
			out.Kind = EventUnreachable
		case pcpclient.EventReachable:
			out.Kind = EventReachable
		case pcpclient.EventWithdrawn:
			out.Kind = EventWithdrawn
			if ev.Mapping != nil && ev.Request != nil {
				res, req := fromPCP(*ev.Mapping), MapRequest(*ev.Request)
				out.Mapping, out.Request = &res, &req
			}
			if ev.Error != nil {
				var ue *Error
				if e, ok := p.error("map", ev.Error).(*Error); ok {
					ue = e
				}
				out.Err = ue
			}
		default:
			continue
		}
		emit(p.events, out)
	}
}

// fromPCP is the client's result in upstream's terms.
func fromPCP(r pcpclient.MapResult) MapResult {
	return MapResult{External: r.External, Lifetime: r.Lifetime, Epoch: r.Epoch, Nonce: r.Nonce, Server: r.Server, At: r.At,
		Prefix64: r.Prefix64}
}

func addrPortString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Kind is KindPCP or KindNATPMP.
func (p *PCP) Kind() Kind { return p.kind }

// Map makes or renews a mapping. A NAT-PMP gateway knows neither filters
// nor descriptions (RFC 6886): they are left out, and the CPE's own DNAT
// keeps a mapping's remote-host restriction.
func (p *PCP) Map(ctx context.Context, r MapRequest) (MapResult, error) {
	if p.kind == KindNATPMP {
		r.Filters, r.Description = nil, ""
	}
	res, err := p.c.Map(ctx, pcpclient.MapRequest(r))
	if err != nil {
		return MapResult{}, p.error("map", err)
	}
	return fromPCP(res), nil
}

// Delete removes a mapping with its nonce.
func (p *PCP) Delete(ctx context.Context, r MapRequest) error {
	if p.kind == KindNATPMP {
		r.Filters, r.Description = nil, ""
	}
	return p.error("delete", p.c.Delete(ctx, pcpclient.MapRequest(r)))
}

// ExternalAddr returns the upstream's external IPv4 address.
func (p *PCP) ExternalAddr(ctx context.Context) (netip.Addr, error) {
	a, err := p.c.ExternalAddr(ctx)
	return a, p.error("external address", err)
}

// Events delivers the client's notices; closed by Close.
func (p *PCP) Events() <-chan Event { return p.events }

// Probe asks whether the server answers (see pcpclient.Client.Probe).
func (p *PCP) Probe(ctx context.Context) (string, error) { return p.c.Probe(ctx) }

// Info is what the status shows.
func (p *PCP) Info() Info {
	st := p.c.Status()
	in := Info{
		Kind: p.kind, Address: addrPortString(st.Server), External: st.External, Reachable: st.Reachable,
		LastAnswer: st.LastAnswer, LastError: st.LastError, Sent: st.Sent, Received: st.Received,
		Dropped: st.Dropped, Epoch: st.Epoch, Protocol: st.Protocol,
	}
	for _, s := range st.Servers {
		in.Servers = append(in.Servers, s.String())
	}
	if in.Address == "" && len(in.Servers) > 0 {
		in.Address = in.Servers[0]
	}
	return in
}

// Close closes the client and waits for the event pump.
func (p *PCP) Close() error {
	p.once.Do(func() {
		p.c.Close()
		p.wg.Wait()
	})
	return nil
}

// error turns the client's errors into upstream ones: a server's refusal
// (*pcpclient.ResultError, also behind ErrBackoff) into *Error with its
// code; what the protocol cannot do into *Error too (asking again would
// not help); anything else (no answer) is returned as is.
func (p *PCP) error(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *pcpclient.ResultError
	switch {
	case errors.As(err, &re):
		who := "PCP server"
		if p.kind == KindNATPMP {
			who = "NAT-PMP gateway"
		}
		d := fmt.Sprintf("%s answered %v", who, re.Code)
		if re.ByClient {
			d = fmt.Sprintf("%s gave another port than asked", who)
		}
		return &Error{Kind: p.kind, Op: op, Code: re.Code, Lifetime: re.Lifetime, Until: re.Until, ByClient: re.ByClient, Detail: d, Err: err}
	case errors.Is(err, pcpclient.ErrNATPMPThirdParty), errors.Is(err, pcpclient.ErrNATPMPUnsupported):
		return &Error{Kind: p.kind, Op: op, Code: pcp.UnsuppOption, Detail: err.Error(), Err: err}
	}
	return err
}

// ReleaseAll deletes what this backend made (another upstream takes over).
func (p *PCP) ReleaseAll(ctx context.Context) error {
	return p.error("delete", p.c.ReleaseAll(ctx))
}
