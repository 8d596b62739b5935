module github.com/pcpgw/pcpgw

go 1.26.8

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/nftables v0.3.0
	github.com/huin/goupnp v1.3.1
	github.com/koron/go-ssdp v0.9.2
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	github.com/miekg/dns v1.1.73
	golang.org/x/crypto v0.58.0
	golang.org/x/net v0.61.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require (
	github.com/mdlayher/socket v0.5.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
