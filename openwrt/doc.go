// Package openwrt holds no Go code of its own: it is the OpenWrt packaging
// of pcpgw and of its LuCI pages, and its tests (openwrt_test.go,
// rpcd_test.go, luci_test.go) run under `go test ./...`.
//
//	pcpgw/Makefile             the package for the OpenWrt packages feed
//	                           (golang-package.mk; version stamped with
//	                           GO_PKG_LDFLAGS_X := main.version=...)
//	pcpgw/files/pcpgw.init     /etc/init.d/pcpgw: procd, START=95 (after
//	                           fw4 at 19), resolves lan/wan/wan6 logical
//	                           networks to devices, respawn, reload and
//	                           interface triggers
//	pcpgw/files/pcpgw.config   /etc/config/pcpgw: documented defaults and
//	                           miniupnpd's default perm_rules
//	pcpgw/files/pcpgw.uci-defaults
//	                           /etc/uci-defaults/90-pcpgw-migrate: carries
//	                           /etc/config/upnpd over once, while
//	                           /etc/config/pcpgw is the default (copy in
//	                           /usr/lib/pcpgw/pcpgw.config), stops and
//	                           disables miniupnpd
//	pcpgw/files/dhcp.sh, pcpgw.udhcpc, pcpgw.odhcp6c
//	                           DHCP hooks: DHCPv4 option 158, DHCPv6
//	                           option 86 to the servers file; option 64
//	                           (AFTR) to aftr_name and a restart
//	pcpgw/files/pcpgw.rpcd     /usr/libexec/rpcd/pcpgw: rpcd plugin, ubus
//	                           call pcpgw status|list|delete through the
//	                           pcpgw binary and the control socket
//	pcpgw/files/pcpgw.acl.json /usr/share/rpcd/acl.d/pcpgw.json: reading
//	                           status and list, writing delete
//	pcpgw/files/pcpgw.postinst, pcpgw.prerm, pcpgw.postrm
//	                           maintainer scripts
//	luci-app-pcpgw/            the LuCI pages, for the luci feed (luci.mk):
//	                           Services > Port mapping (view/pcpgw/pcpgw.js),
//	                           the Status > Overview include
//	                           (view/status/include/80_pcpgw.js), menu.d,
//	                           acl.d, po/templates/pcpgw.pot
//	build-ipk.sh               `make ipk ARCH=...`: pcpgw's .ipk and
//	                           luci-app-pcpgw's, with go, tar, gzip and ar
//	                           only
//	test/run.sh                shell harness over stubs of procd, uci,
//	                           /lib/functions.sh, network.sh and jshn
//	                           (test/jshn, test/stubs/libubox)
//	                           (`make openwrt-test`)
//	test/luci/                 a stand-in for LuCI's runtime: renders the
//	                           pages in headless Chromium (screenshot.sh,
//	                           TestLuCIRender)
//
// The fw4 include installed as
// /usr/share/nftables.d/chain-pre/forward/30-pcpgw.nft is
// ../firewall/fw4-include.nft (one copy): fw4 includes it at the top of its
// forward chain on every reload, so flows that pcpgw's own table (inet
// pcpgw) marks with conntrack mark bit 0x20000000 stay accepted across
// `fw4 reload`.
package openwrt
