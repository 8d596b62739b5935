package upstream

import "testing"

// TestOfDevice: a NOTIFY counts for the IGD only when its USN names the
// IGD's root device (case aside), or when the description gave no UDN.
func TestOfDevice(t *testing.T) {
	const udn = "uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07c"
	for _, tc := range []struct {
		usn, udn string
		want     bool
	}{
		{udn, udn, true},
		{udn + "::upnp:rootdevice", udn, true},
		{"UUID:3D3CEC3A-8CF0-11E0-98EE-001A6BD2D07C::urn:schemas-upnp-org:device:InternetGatewayDevice:2", udn, true},
		{"uuid:0000-media-server::upnp:rootdevice", udn, false},
		{"uuid:3d3cec3a-8cf0-11e0-98ee-001a6bd2d07d", udn, false},
		{"uuid:anything::upnp:rootdevice", "", true},
	} {
		if got := ofDevice(tc.usn, tc.udn); got != tc.want {
			t.Errorf("ofDevice(%q, %q) = %v, want %v", tc.usn, tc.udn, got, tc.want)
		}
	}
}
