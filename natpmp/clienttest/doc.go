// Package clienttest drives pcpgw's NAT-PMP and PCP server with third-party
// Go clients in the namespace lab of internal/lab: github.com/jackpal/go-nat-pmp
// and tailscale.com/net/portmapper. It is a module of its own so that the
// main module does not carry these clients (STYLE.md "Tests"). Run as root:
//
//	cd natpmp/clienttest && go test -race ./...
//
// The tests skip when not root and fail instead with PCPGW_E2E=1.
package clienttest
