package pcp

import (
	"net/netip"
	"testing"
)

var (
	benchMapResponse = Response{Version: 2, Opcode: OpMap, Lifetime: 3600, Epoch: 1, Map: &Map{
		Nonce: nonce1, Protocol: 6, InternalPort: 8080, ExternalPort: 18080, ExternalAddr: netip.MustParseAddr("203.0.113.1")},
		Options: []Option{{Code: OptPreferFailure}}}
	benchNATPMPRequest  = NATPMPRequest{Opcode: NATPMPOpMapTCP, InternalPort: 8080, SuggestedExternalPort: 18080, Lifetime: 3600}
	benchNATPMPResponse = NATPMPResponse{Opcode: NATPMPOpMapTCP, Epoch: 7, InternalPort: 8080, ExternalPort: 18080, Lifetime: 3600}
)

// TestAppendMarshalNoAlloc: marshalling into a buffer with room allocates
// nothing (the read/write loops reuse one buffer).
func TestAppendMarshalNoAlloc(t *testing.T) {
	buf := make([]byte, 0, MaxSize)
	for name, f := range map[string]func(){
		"Request":        func() { buf = mapRequest.AppendMarshal(buf[:0]) },
		"Response":       func() { buf = benchMapResponse.AppendMarshal(buf[:0]) },
		"NATPMPRequest":  func() { buf = benchNATPMPRequest.AppendMarshal(buf[:0]) },
		"NATPMPResponse": func() { buf = benchNATPMPResponse.AppendMarshal(buf[:0]) },
		"ErrorResponse":  func() { buf = AppendErrorResponse(buf[:0], buf[:0:0], 0, UnsuppVersion, 1800, 1) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

func BenchmarkParseRequestMap(b *testing.B) {
	pkt := unhex(b, mapRequestHex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalRequestMap(b *testing.B) {
	buf := make([]byte, 0, MaxSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = mapRequest.AppendMarshal(buf[:0])
	}
}

func BenchmarkParseResponseMap(b *testing.B) {
	pkt := benchMapResponse.AppendMarshal(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseResponse(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalResponseMap(b *testing.B) {
	buf := make([]byte, 0, MaxSize)
	b.ReportAllocs()
	for b.Loop() {
		buf = benchMapResponse.AppendMarshal(buf[:0])
	}
}

func BenchmarkParseNATPMPRequestMap(b *testing.B) {
	pkt := benchNATPMPRequest.AppendMarshal(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNATPMPRequest(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalNATPMPRequestMap(b *testing.B) {
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf = benchNATPMPRequest.AppendMarshal(buf[:0])
	}
}

func BenchmarkParseNATPMPResponseMap(b *testing.B) {
	pkt := benchNATPMPResponse.AppendMarshal(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNATPMPResponse(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalNATPMPResponseMap(b *testing.B) {
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf = benchNATPMPResponse.AppendMarshal(buf[:0])
	}
}
