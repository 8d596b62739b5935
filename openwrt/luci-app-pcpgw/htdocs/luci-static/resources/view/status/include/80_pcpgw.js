'use strict';
'require baseclass';
'require rpc';

// Status > Overview: pcpgw's active port mappings (ubus call pcpgw list),
// with the LAN hosts' DHCP names, and where the internet reaches them.
// As in view/pcpgw/pcpgw.js, the daemon's JSON is read only as st.<field>
// and row.<field> (checked by openwrt/luci_test.go) and reaches the page
// as text nodes.

const callStatus = rpc.declare({
	object: 'pcpgw',
	method: 'status',
	expect: { '': {} }
});

const callList = rpc.declare({
	object: 'pcpgw',
	method: 'list',
	expect: { '': {} }
});

const callLeases = rpc.declare({
	object: 'luci-rpc',
	method: 'getDHCPLeases',
	expect: { '': {} }
});

function T(s) {
	return document.createTextNode((s == null) ? '' : String(s));
}

function hostNames(leases) {
	const names = {};
	for (const l of L.toArray(leases?.dhcp_leases))
		if (l.hostname && l.ipaddr)
			names[l.ipaddr] = l.hostname;
	for (const l of L.toArray(leases?.dhcp6_leases))
		if (l.hostname)
			for (const a of L.toArray(l.ip6addrs ?? l.ip6addr))
				names[String(a).replace(/\/\d+$/, '')] = l.hostname;
	return names;
}

// failure is the error a plugin answer carries, if any.
function failure(reply) {
	return reply?.error || null;
}

function hostOf(endpoint) {
	const m = /^\[(.+)\]:\d+$/.exec(endpoint) || /^(.+):\d+$/.exec(endpoint);
	return m ? m[1] : endpoint;
}

function providerState(row) {
	switch (row.upstream) {
	case 'ok': return _('made');
	case 'pending': return _('pending');
	case 'failing': return _('failing');
	case 'none': return _('not needed');
	}
	return row.upstream;
}

function portOf(endpoint) {
	const m = /:(\d+)$/.exec(endpoint);
	return m ? m[1] : '';
}

return baseclass.extend({
	title: _('Port mappings (pcpgw)'),

	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), {}),
			L.resolveDefault(callList(), {}),
			L.resolveDefault(callLeases(), {})
		]);
	},

	render: function(data) {
		const st = data[0], list = data[1], names = hostNames(data[2]);
		if (failure(list) || !st?.upstream)
			return E('em', [ T(_('pcpgw does not answer: %s').format(failure(list) || failure(data[0]) || _('no answer'))) ]);

		const table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('LAN host') ]),
				E('th', { 'class': 'th' }, [ _('Protocol') ]),
				E('th', { 'class': 'th' }, [ _('External endpoint') ]),
				E('th', { 'class': 'th' }, [ _('LAN port') ]),
				E('th', { 'class': 'th right' }, [ _('Lease left') ]),
				E('th', { 'class': 'th' }, [ _('Provider') ]),
				E('th', { 'class': 'th' }, [ _('Description') ])
			])
		]);
		const rows = L.toArray(list.mappings).map(function(row) {
			const host = hostOf(row.internal), port = portOf(row.internal);
			return [
				E('span', [ T(names[host] ? '%s (%s)'.format(names[host], host) : host) ]),
				E('span', [ T(String(row.proto).toUpperCase()) ]),
				E('span', [ T(row.external || (row.wan_port ? _('this router, port %d').format(row.wan_port) : '-')) ]),
				E('span', [ T(port) ]),
				E('span', [ T((row.lease_left_s < 0) ? _('permanent') : '%t'.format(row.lease_left_s)) ]),
				E('span', { 'title': row.error || '' }, [ T(providerState(row) + (row.error ? ': ' + row.error : '')) ]),
				E('span', [ T(row.description || row.origin) ])
			];
		});
		cbi_update_table(table, rows, E('em', [ _('There are no port mappings.') ]));

		return E('div', [
			E('p', [ T(_('Reachable from the internet at %s; %d mappings, %d pending, %d failing.')
				.format(st.external_addr || _('an unknown address'), st.mappings, st.pending, st.failing)) ]),
			table
		]);
	}
});
