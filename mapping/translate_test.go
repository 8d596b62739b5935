package mapping

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pcpgw/pcpgw/pcp"
	"github.com/pcpgw/pcpgw/pcpclient"
	"github.com/pcpgw/pcpgw/upstream"
)

// TestTranslation is the table of every core outcome in every protocol
// (RFC 6970 §4.3 for what the provider said; IGD:1/IGD:2 WANIPConnection
// and WANIPv6FirewallControl; RFC 6886 §3.5; RFC 6887 §7.4).
func TestTranslation(t *testing.T) {
	tests := []struct {
		code            Code
		igd1, igd2, pin int
		natpmp          pcp.NATPMPResult
		pcp             pcp.ResultCode
		pcpLife         uint32
	}{
		{CodeOK, 501, 501, 501, pcp.NATPMPSuccess, pcp.Success, 0},
		{CodeInvalid, 402, 402, 402, pcp.NATPMPNotAuthorized, pcp.MalformedRequest, 1800},
		{CodeNotAuthorized, 718, 606, 606, pcp.NATPMPNotAuthorized, pcp.NotAuthorized, 1800},
		{CodeConflict, 718, 718, 701, pcp.NATPMPNotAuthorized, pcp.CannotProvideExternal, 30},
		{CodeQuota, 501, 728, 701, pcp.NATPMPOutOfResources, pcp.UserExQuota, 30},
		{CodeNoResources, 501, 728, 701, pcp.NATPMPOutOfResources, pcp.NoResources, 30},
		{CodeNetworkFailure, 501, 501, 501, pcp.NATPMPNetworkFailure, pcp.NetworkFailure, 30},
		{CodeCannotProvideExternal, 718, 718, 501, pcp.NATPMPOutOfResources, pcp.CannotProvideExternal, 30},
		{CodeNotFound, 714, 714, 704, pcp.NATPMPSuccess, pcp.Success, 0},
		{CodeUnsupportedProtocol, 402, 402, 705, pcp.NATPMPUnsuppOpcode, pcp.UnsuppProtocol, 1800},
		{CodeNonceMismatch, 718, 606, 606, pcp.NATPMPNotAuthorized, pcp.NotAuthorized, 1800},
		{CodeDisabled, 718, 606, 702, pcp.NATPMPNotAuthorized, pcp.NotAuthorized, 1800},
		{CodeUnsupported, 501, 501, 501, pcp.NATPMPUnsuppOpcode, pcp.UnsuppOpcode, 1800},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			var err error = &Error{Code: tt.code}
			if tt.code == CodeOK {
				err = nil
			}
			if got, _ := UPnPError(err, 1); err != nil && got != tt.igd1 {
				t.Errorf("IGD:1 %d, want %d", got, tt.igd1)
			}
			if got, _ := UPnPError(err, 2); err != nil && got != tt.igd2 {
				t.Errorf("IGD:2 %d, want %d", got, tt.igd2)
			}
			if got, desc := UPnPPinholeError(err); err != nil && (got != tt.pin || desc == "") {
				t.Errorf("pinhole %d %q, want %d", got, desc, tt.pin)
			}
			if got := NATPMPResult(err); got != tt.natpmp {
				t.Errorf("NAT-PMP %v, want %v", got, tt.natpmp)
			}
			if got, life := PCPResult(err); got != tt.pcp || life != tt.pcpLife {
				t.Errorf("PCP %v/%d, want %v/%d", got, life, tt.pcp, tt.pcpLife)
			}
		})
	}
	// The provider's error lifetime is passed on.
	if _, life := PCPResult(&Error{Code: CodeNoResources, Lifetime: 7 * time.Second}); life != 7 {
		t.Errorf("error lifetime %d, want 7", life)
	}
	// A wrapped error keeps its code; another error is a network failure.
	if c := CodeOf(fmt.Errorf("x: %w", &Error{Code: CodeQuota})); c != CodeQuota {
		t.Errorf("wrapped: %v", c)
	}
	if c := CodeOf(errors.New("boom")); c != CodeNetworkFailure {
		t.Errorf("foreign error: %v", c)
	}
	if s := (&Error{Code: CodeConflict, Msg: "port 1", Err: errors.New("cause")}).Error(); s != "mapping: conflict: port 1: cause" {
		t.Errorf("Error() = %q", s)
	}
}

// TestFromProvider: RFC 6970 §4.3 read the other way, and the provider's
// errors as the core reports them.
func TestFromProvider(t *testing.T) {
	tests := []struct {
		pcp  pcp.ResultCode
		code Code
		igd1 int
	}{
		{pcp.UnsuppVersion, CodeNetworkFailure, 501},
		{pcp.NotAuthorized, CodeNotAuthorized, 718},
		{pcp.MalformedRequest, CodeNetworkFailure, 501},
		{pcp.UnsuppOpcode, CodeNetworkFailure, 501},
		{pcp.UnsuppOption, CodeNetworkFailure, 501},
		{pcp.MalformedOption, CodeNetworkFailure, 501},
		{pcp.NetworkFailure, CodeNetworkFailure, 501},
		{pcp.NoResources, CodeNoResources, 501},
		{pcp.UnsuppProtocol, CodeUnsupportedProtocol, 402},
		{pcp.UserExQuota, CodeQuota, 501},
		{pcp.CannotProvideExternal, CodeCannotProvideExternal, 718},
		{pcp.AddressMismatch, CodeNetworkFailure, 501},
		{pcp.ExcessiveRemotePeers, CodeNetworkFailure, 501},
	}
	for _, tt := range tests {
		err := upstreamError(&upstream.Error{Kind: upstream.KindPCP, Op: "map", Code: tt.pcp, Lifetime: 30})
		if got := CodeOf(err); got != tt.code {
			t.Errorf("%v: %v, want %v", tt.pcp, got, tt.code)
		}
		if got, _ := UPnPError(err, 1); got != tt.igd1 {
			t.Errorf("%v: IGD:1 %d, want %d", tt.pcp, got, tt.igd1)
		}
		if e := asError(err); e == nil || e.Lifetime != 30*time.Second {
			t.Errorf("%v: lifetime lost: %+v", tt.pcp, e)
		}
	}
	if CodeOf(upstreamError(pcpclient.ErrTimeout)) != CodeNetworkFailure || upstreamError(nil) != nil {
		t.Error("timeouts are network failures; nil stays nil")
	}
	for _, m := range []Mode{ModeAuto, ModeLocal, ModeNAT444, ModeDSLite} {
		if got, ok := ParseMode(m.String()); !ok || got != m {
			t.Errorf("ParseMode(%q) = %v %v", m, got, ok)
		}
	}
	if _, ok := ParseMode("bogus"); ok {
		t.Error("ParseMode accepted bogus")
	}
}
