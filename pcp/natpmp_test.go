package pcp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNATPMPRequest(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want NATPMPRequest
	}{
		// RFC 6886 §3.2 figure.
		{"external address", "00 00", NATPMPRequest{}},
		// RFC 6886 §3.3 figure: map TCP 8080 -> 18080 for 3600 s.
		{"map TCP", "00 02 0000 1f90 46a0 00000e10", NATPMPRequest{Opcode: 2, InternalPort: 8080, SuggestedExternalPort: 18080, Lifetime: 3600}},
		// RFC 6886 §3.4: delete all UDP mappings.
		{"delete all UDP", "00 01 0000 0000 0000 00000000", NATPMPRequest{Opcode: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			got, err := ParseNATPMPRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if out := got.AppendMarshal(nil); !bytes.Equal(out, b) {
				t.Errorf("AppendMarshal = %x, want %x", out, b)
			}
		})
	}
}

func TestNATPMPRequestLenient(t *testing.T) {
	// Trailing octets and a non-zero reserved field are ignored (RFC 6886 §3.3).
	got, err := ParseNATPMPRequest(unhex(t, "00 01 ffff 0035 0035 00000078 deadbeef"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (NATPMPRequest{Opcode: 1, InternalPort: 53, SuggestedExternalPort: 53, Lifetime: 120}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := ParseNATPMPRequest([]byte{0, 0, 1, 2, 3}); err != nil {
		t.Errorf("opcode 0 with trailing octets: %v", err)
	}
}

func TestNATPMPRequestErrors(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		plain  error
		result NATPMPResult
		op     uint8
	}{
		{name: "empty", in: "", plain: ErrShort},
		{name: "one octet", in: "00", plain: ErrShort},
		{name: "short map", in: "00 02 0000 1f90 46a0", plain: ErrShort},
		{name: "response", in: "00 80", plain: ErrNotRequest},
		{name: "response map", in: "00 82 0000 1f90 46a0 00000e10", plain: ErrNotRequest},
		{name: "PCP version 2", in: "02 01 0000", result: NATPMPUnsuppVersion, op: 1},
		{name: "version 1", in: "01 00", result: NATPMPUnsuppVersion, op: 0},
		{name: "opcode 3", in: "00 03 0000 1f90 46a0 00000e10", result: NATPMPUnsuppOpcode, op: 3},
		{name: "opcode 127 short", in: "00 7f", result: NATPMPUnsuppOpcode, op: 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseNATPMPRequest(unhex(t, tt.in))
			var pe *NATPMPParseError
			if tt.plain != nil {
				if !errors.Is(err, tt.plain) || errors.As(err, &pe) {
					t.Fatalf("err = %v, want plain %v", err, tt.plain)
				}
				return
			}
			if !errors.As(err, &pe) || pe.Result != tt.result || pe.Opcode != tt.op || r.Opcode != tt.op {
				t.Fatalf("err = %v, request %+v; want result %s opcode %d", err, r, tt.result, tt.op)
			}
			if pe.Error() == "" {
				t.Error("empty message")
			}
		})
	}
}

func TestNATPMPResponse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want NATPMPResponse
	}{
		// RFC 6886 §3.2 figure: external address 203.0.113.1, epoch 1000.
		{"external address", "00 80 0000 000003e8 cb007101",
			NATPMPResponse{Epoch: 1000, ExternalAddr: netip.MustParseAddr("203.0.113.1")}},
		// RFC 6886 §3.2: error, address zero.
		{"external address failure", "00 80 0003 000003e8 00000000",
			NATPMPResponse{Result: NATPMPNetworkFailure, Epoch: 1000, ExternalAddr: netip.MustParseAddr("0.0.0.0")}},
		{"external address failure header only", "00 80 0003 000003e8",
			NATPMPResponse{Result: NATPMPNetworkFailure, Epoch: 1000}},
		// RFC 6886 §3.3 figure.
		{"map TCP", "00 82 0000 0000000a 1f90 46a0 00000e10",
			NATPMPResponse{Opcode: 2, Epoch: 10, InternalPort: 8080, ExternalPort: 18080, Lifetime: 3600}},
		// RFC 6886 §3.5 figure: UNSUPP_VERSION (opcode 0 as the figure shows 128+0).
		{"unsupported version", "00 80 0001 0000000a", NATPMPResponse{Result: NATPMPUnsuppVersion, Epoch: 10}},
		{"unsupported opcode", "00 85 0005 0000000a", NATPMPResponse{Opcode: 5, Result: NATPMPUnsuppOpcode, Epoch: 10}},
		{"refused map", "00 81 0002 0000000a 0035 0000 00000000",
			NATPMPResponse{Opcode: 1, Result: NATPMPNotAuthorized, Epoch: 10, InternalPort: 53}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.in)
			got, err := ParseNATPMPResponse(b)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmpOpts); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if out := got.AppendMarshal(nil); !bytes.Equal(out, b) {
				t.Errorf("AppendMarshal = %x, want %x", out, b)
			}
		})
	}
}

func TestNATPMPResponseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"short", "00 80 0000 0000", ErrShort},
		{"version 2", "02 80 0000 00000000 00000000", ErrVersion},
		{"request", "00 00 0000 00000000 00000000", ErrNotResponse},
		{"address missing", "00 80 0000 00000001", ErrShort},
		{"map short", "00 82 0000 00000001 1f90", ErrShort},
		{"unknown opcode", "00 83 0000 00000001", ErrOpcode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseNATPMPResponse(unhex(t, tt.in)); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
