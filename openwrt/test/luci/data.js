// Sample answers for the screenshot (stub.js): the shapes of `pcpgw
// status --json` and `pcpgw list --json` (internal/control), wrapped as
// the rpcd plugin answers; documentation addresses only.
'use strict';
const now = Date.now();
window.SAMPLE = {
	ubus: {
		'pcpgw.status': {
			version: 'v0.1.0', started: new Date(now - 3 * 86400e3 - 4000e3).toISOString(),
			mode: 'nat444', mode_config: 'auto', wan: 'eth1', wan_addr: '100.64.12.34',
			external_addr: '203.0.113.1', epoch: 262800,
			upstream: {
				kind: 'pcp', kind_config: 'auto', address: '100.64.0.1:5351', external_addr: '203.0.113.1',
				detected: new Date(now - 3 * 86400e3).toISOString(),
				servers: [ '100.64.0.1' ], server: '100.64.0.1:5351', protocol: 'PCP', epoch: 1811, reachable: true,
				last_answer: new Date(now - 12e3).toISOString(), sent: 5120, received: 5118, dropped: 0
			},
			listeners: [ 'udp 192.168.1.1:5351', 'tcp 192.168.1.1:5000' ],
			mappings: 4, pinholes: 1, pending: 0, failing: 1
		},
		'pcpgw.list': {
			mappings: [
				{ id: 1, proto: 'tcp', external: '203.0.113.1:8443', wan_port: 8443, internal: '192.168.1.20:443', client: '192.168.1.20',
				  lease_left_s: -1, origin: 'static', upstream: 'ok', description: 'NAS web page' },
				{ id: 7, proto: 'udp', external: '203.0.113.1:3074', wan_port: 3074, internal: '192.168.1.42:3074', client: '192.168.1.42',
				  lease_left_s: 3187, origin: 'upnp', upstream: 'ok', description: 'Xbox Live' },
				{ id: 9, proto: 'tcp', external: '203.0.113.1:51413', wan_port: 51413, internal: '192.168.1.35:51413', client: '192.168.1.35',
				  lease_left_s: 7021, origin: 'natpmp', upstream: 'ok' },
				{ id: 12, proto: 'tcp', wan_port: 8080, internal: '192.168.1.35:8080', client: '192.168.1.35',
				  lease_left_s: 1640, origin: 'pcp', upstream: 'failing', description: 'camera',
				  error: 'CANNOT_PROVIDE_EXTERNAL: the provider refused external port 8080', retry_at: new Date(now + 25e3).toISOString() }
			]
		},
		'pcpgw.delete': { deleted: 1 },
		'luci-rpc.getDHCPLeases': {
			dhcp_leases: [
				{ hostname: 'xbox', ipaddr: '192.168.1.42' },
				{ hostname: 'laptop', ipaddr: '192.168.1.35' },
				{ hostname: 'nas', ipaddr: '192.168.1.20' }
			],
			dhcp6_leases: []
		}
	},
	uci: [
		{ '.name': 'main', '.type': 'pcpgw', enabled: '1', lan: [ 'lan' ], wan: 'wan', wan6: 'wan6', mode: 'auto', secure_mode: '1' },
		{ '.name': 'cfg02', '.type': 'forward', name: 'nas', proto: 'tcp', ext_port: '8443', int_addr: '192.168.1.20', int_port: '443', enabled: '1', description: 'NAS web page' },
		{ '.name': 'cfg03', '.type': 'perm_rule', action: 'allow', ext_ports: '1024-65535', int_addr: '0.0.0.0/0', int_ports: '1024-65535', comment: 'Allow high ports' },
		{ '.name': 'cfg04', '.type': 'perm_rule', action: 'deny', ext_ports: '0-65535', int_addr: '0.0.0.0/0', int_ports: '0-65535', comment: 'Default deny' }
	]
};
