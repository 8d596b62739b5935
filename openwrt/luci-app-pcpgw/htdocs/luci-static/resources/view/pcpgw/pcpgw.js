'use strict';
'require view';
'require dom';
'require poll';
'require rpc';
'require uci';
'require ui';
'require form';
'require tools.widgets as widgets';

// Services > Port mapping: pcpgw's state (ubus call pcpgw status), its
// mappings (ubus call pcpgw list) with a delete button (ubus call pcpgw
// delete), then /etc/config/pcpgw: the static forwards, the main options
// and the permission rules.
//
// The daemon's JSON (internal/control's Status and Row) is read only as
// st.<field> (the status) and row.<field> (a mapping):
// openwrt/luci_test.go checks every such field against pcpgw's JSON, so
// that a renamed field fails there and not on a router. What the daemon
// says reaches the page as text nodes (T()), never as HTML: E() and
// cbi_update_table() take a string as HTML, and a mapping's description
// is whatever a LAN host sent.

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

const callDelete = rpc.declare({
	object: 'pcpgw',
	method: 'delete',
	params: [ 'id' ],
	expect: { '': {} }
});

const callLeases = rpc.declare({
	object: 'luci-rpc',
	method: 'getDHCPLeases',
	expect: { '': {} }
});

// hostNames maps the LAN addresses of the DHCP leases (dnsmasq's
// /tmp/dhcp.leases, odhcpd's DHCPv6 leases) to their host names.
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

// hostOf is the address of an ADDR:PORT or [ADDR]:PORT endpoint.
function hostOf(endpoint) {
	const m = /^\[(.+)\]:\d+$/.exec(endpoint) || /^(.+):\d+$/.exec(endpoint);
	return m ? m[1] : endpoint;
}

// T is s as a text node: never parsed as HTML.
function T(s) {
	return document.createTextNode((s == null) ? '' : String(s));
}

function origin(row) {
	switch (row.origin) {
	case 'upnp': return _('UPnP IGD');
	case 'natpmp': return _('NAT-PMP');
	case 'pcp': return _('PCP');
	case 'static': return _('Static forward');
	}
	return row.origin;
}

function leaseLeft(row) {
	if (row.lease_left_s < 0)
		return _('permanent');
	return '%t'.format(row.lease_left_s);
}

// provider is the provider side of a mapping: its state, and why the
// provider has not made it (with the next try).
function provider(row) {
	let state;
	switch (row.upstream) {
	case 'ok': state = _('made'); break;
	case 'pending': state = _('pending'); break;
	case 'failing': state = _('failing'); break;
	case 'none': state = _('not needed'); break;
	default: state = row.upstream;
	}
	if (!row.error)
		return T(state);
	let why = state + ': ' + row.error;
	if (row.retry_at) {
		const left = Math.max(0, Math.round((Date.parse(row.retry_at) - Date.now()) / 1000));
		why += ' ' + _('(retry in %t)').format(left);
	}
	return E('span', { 'class': 'cbi-value-error' }, [ T(why) ]);
}

function handleDelete(row, ev) {
	const btn = ev.currentTarget;
	dom.parent(btn, '.tr').style.opacity = 0.5;
	btn.classList.add('spinning');
	btn.disabled = true;
	btn.blur();
	return callDelete(row.id).then(function(reply) {
		if (reply?.error)
			throw reply.error;
	}).catch(function(err) {
		ui.addNotification(null, E('p', [ T(_('The mapping could not be deleted: %s').format(err)) ]), 'error');
		dom.parent(btn, '.tr').style.opacity = '';
		btn.classList.remove('spinning');
		btn.disabled = false;
	});
}

function modeText(st) {
	let mode;
	switch (st.mode) {
	case 'local': mode = _('Public WAN address (no provider NAT)'); break;
	case 'nat444': mode = _('Behind the provider\'s NAT (NAT444)'); break;
	case 'dslite': mode = _('DS-Lite (no NAT on this router)'); break;
	default: mode = st.mode;
	}
	if (st.mode_config === 'auto')
		mode += ' ' + _('(chosen automatically)');
	return mode;
}

function kindText(st) {
	switch (st.upstream.kind) {
	case 'pcp': return _('The provider\'s PCP server');
	case 'natpmp': return _('A NAT-PMP gateway');
	case 'upnp': return _('The ISP box\'s UPnP IGD');
	case 'none': return _('None: ports are opened on this router only');
	case 'local': return _('None needed: the WAN address is public');
	case 'detecting': return _('Detecting…');
	case '':
	case undefined:
		// A pcpgw without upstream kinds: PCP or nothing.
		return (st.mode === 'local') ? _('None needed: the WAN address is public') : _('The provider\'s PCP server');
	}
	return st.upstream.kind;
}

function upstreamText(st) {
	let kind = kindText(st);
	if (st.upstream.address)
		kind += ': ' + st.upstream.address;
	if (st.upstream.kind_config && st.upstream.kind_config !== 'auto')
		kind += ' ' + _('(set to %s)').format(st.upstream.kind_config);
	else if (st.upstream.detected)
		kind += ' ' + _('(detected %s)').format(new Date(st.upstream.detected).toLocaleString());
	return kind;
}

// deviceNode is the upstream UPnP IGD as its description names it.
function deviceNode(st) {
	if (!st.upstream.device)
		return null;
	const model = [ st.upstream.device.manufacturer, st.upstream.device.model ].filter(Boolean).join(' ');
	let name = st.upstream.device.friendly_name || model || st.upstream.device.location;
	if (st.upstream.device.friendly_name && model)
		name += ' (' + model + ')';
	return E('span', { 'title': [ st.upstream.device.service, st.upstream.device.location ].filter(Boolean).join(' ') }, [ T(name) ]);
}

function serverText(st) {
	if (st.upstream.server) {
		let server = '%s %s, %s, %s'.format(st.upstream.server, st.upstream.protocol,
			st.upstream.reachable ? _('reachable') : _('unreachable'), _('epoch %d').format(st.upstream.epoch));
		if (st.upstream.last_error)
			server += ' (' + _('last error: %s').format(st.upstream.last_error) + ')';
		return server;
	}
	if (st.mode === 'local' || (st.upstream.kind && st.upstream.kind !== 'pcp'))
		return null;
	if (L.toArray(st.upstream.servers).length)
		return _('none reachable of %s').format(L.toArray(st.upstream.servers).join(', '));
	return _('none found (DHCP options 158/86, AFTR, default router)');
}

// statusRows is the status table: [label, value] pairs, a value null
// when there is nothing to show.
function statusRows(st) {
	const started = Date.parse(st.started);
	const node = function(s) { return (s == null) ? null : T(s); };
	return [
		[ _('Service'), T(_('pcpgw %s, running for %t').format(st.version, isNaN(started) ? 0 : Math.max(0, (Date.now() - started) / 1000))) ],
		[ _('Mode'), T(modeText(st)) ],
		[ _('WAN'), T('%s %s'.format(st.wan, st.wan_addr || _('(no IPv4 address)'))) ],
		[ _('Upstream'), T(upstreamText(st)) ],
		[ _('Upstream device'), deviceNode(st) ],
		[ _('Advice'), (st.upstream.kind === 'none' && st.upstream.advice) ? E('strong', [ T(st.upstream.advice) ]) : null ],
		[ _('External address'), T(st.external_addr || st.upstream.external_addr || _('unknown')) ],
		[ _('PCP server'), node(serverText(st)) ],
		[ _('Server epoch'), (st.mode !== 'local') ? T(_('%d s (this router\'s epoch as a PCP server)').format(st.epoch)) : null ],
		[ _('Mappings'), T(_('%d (pending %d, failing %d), %d IPv6 pinholes').format(st.mappings, st.pending, st.failing, st.pinholes)) ],
		[ _('Listening on'), T(L.toArray(st.listeners).join(', ') || _('nothing')) ]
	];
}

function renderStatus(st, error) {
	if (error)
		return E('div', { 'class': 'alert-message warning' }, [
			E('p', [ T(_('pcpgw does not answer: %s').format(error)) ]),
			E('p', [ _('Is the service enabled and the WAN up? See the system log (logread -e pcpgw).') ])
		]);
	return E('table', { 'class': 'table' }, statusRows(st).filter(function(r) { return r[1] != null; }).map(function(r) {
		return E('tr', { 'class': 'tr' }, [
			E('td', { 'class': 'td left', 'width': '25%' }, [ r[0] ]),
			E('td', { 'class': 'td left' }, [ r[1] ])
		]);
	}));
}

function mappingRows(rows, names) {
	return rows.map(function(row) {
		const name = names[hostOf(row.internal)] || names[row.client];
		const external = row.external || (row.wan_port ? _('this router, port %d').format(row.wan_port) : '-');
		const deletable = row.origin !== 'static';
		return [
			E('span', { 'title': row.description || '' }, [
				T(origin(row)), row.description ? E('br') : '', row.description ? E('small', [ T(row.description) ]) : ''
			]),
			E('span', [ T('%s %s'.format(String(row.proto).toUpperCase(), external)) ]),
			name ? E('span', [ T(name), E('br'), E('small', [ T(row.internal) ]) ]) : E('span', [ T(row.internal) ]),
			E('span', [ T(leaseLeft(row)) ]),
			provider(row),
			E('button', {
				'class': 'btn cbi-button-remove',
				'disabled': deletable ? null : true,
				'title': deletable ? _('Delete this mapping') : _('A static forward is removed or disabled below'),
				'click': deletable ? L.bind(handleDelete, this, row) : null
			}, [ _('Delete') ])
		];
	});
}

function mappingsTable() {
	return E('table', { 'class': 'table cbi-section-table', 'id': 'pcpgw_mappings' }, [
		E('tr', { 'class': 'tr table-titles' }, [
			E('th', { 'class': 'th' }, [ _('Origin') ]),
			E('th', { 'class': 'th' }, [ _('External endpoint') ]),
			E('th', { 'class': 'th' }, [ _('LAN host') ]),
			E('th', { 'class': 'th' }, [ _('Lease left') ]),
			E('th', { 'class': 'th' }, [ _('Provider') ]),
			E('th', { 'class': 'th cbi-section-actions' }, [])
		])
	]);
}

// failure is the error a plugin answer carries, if any.
function failure(reply) {
	return reply?.error || null;
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), {}),
			L.resolveDefault(callList(), {}),
			L.resolveDefault(callLeases(), {}),
			uci.load('pcpgw')
		]);
	},

	// update redraws the status and the mappings from fresh answers.
	update: function(nodes, data) {
		const st = data[0], list = data[1], names = hostNames(data[2]);
		const error = failure(data[0]) || ((st && st.upstream) ? null : _('no answer'));
		dom.content(nodes.querySelector('#pcpgw_status'), renderStatus(st, error));
		cbi_update_table(nodes.querySelector('#pcpgw_mappings'),
			mappingRows(L.toArray(list?.mappings), names),
			E('em', [ T(failure(list) || _('There are no port mappings.')) ]));
	},

	render: function(data) {
		let m, s, o;
		const names = hostNames(data[2]);

		m = new form.Map('pcpgw', _('Port mapping'),
			_('pcpgw serves UPnP IGD, NAT-PMP and PCP to the hosts of the LAN and carries their port mappings to the provider\'s NAT (PCP), to an ISP box or a NAT-PMP gateway upstream, keeping this router\'s own NAT in step. Mappings made here or by LAN hosts are listed below; the static forwards are kept open for as long as they are configured.'));

		s = m.section(form.TypedSection, '_status', _('Status'));
		s.anonymous = true;
		s.render = function() {
			return E('div', { 'class': 'cbi-section' }, [
				E('h3', [ _('Status') ]),
				E('div', { 'id': 'pcpgw_status' }, [ E('em', { 'class': 'spinning' }, [ _('Collecting data…') ]) ]),
				E('h3', [ _('Port mappings') ]),
				mappingsTable()
			]);
		};

		s = m.section(form.GridSection, 'forward', _('Static forwards'),
			_('Ports kept open at the provider, and forwarded to a LAN host, for as long as they are configured and enabled. The external port may not be 5350, 5351 or the UPnP HTTP port, and two enabled forwards may not share a protocol and external port.'));
		s.anonymous = true;
		s.addremove = true;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enable'));
		o.default = '1';
		o.editable = true;
		o.rmempty = false;

		o = s.option(form.Value, 'name', _('Name'));
		o.rmempty = false;
		o.datatype = 'maxlength(64)';
		o.validate = function(section_id, value) {
			for (const f of uci.sections('pcpgw', 'forward'))
				if (f['.name'] !== section_id && f.name === value)
					return _('Another forward has this name');
			return true;
		};

		o = s.option(form.ListValue, 'proto', _('Protocol'));
		o.value('tcp', 'TCP');
		o.value('udp', 'UDP');
		o.value('both', _('TCP and UDP'));
		o.default = 'both';

		o = s.option(form.Value, 'ext_port', _('External port'));
		o.datatype = 'port';
		o.rmempty = false;
		o.validate = function(section_id, value) {
			const port = +value, http = +(uci.get('pcpgw', 'main', 'http_port') ?? 5000);
			if (port === 5350 || port === 5351)
				return _('Port %d is the NAT-PMP/PCP port').format(port);
			if (port && port === http)
				return _('Port %d is pcpgw\'s UPnP HTTP port').format(port);
			const proto = this.section.formvalue(section_id, 'proto') || 'both';
			for (const f of uci.sections('pcpgw', 'forward')) {
				if (f['.name'] === section_id || f.enabled === '0' || +f.ext_port !== port)
					continue;
				const other = f.proto || 'both';
				if (other === 'both' || proto === 'both' || other === proto)
					return _('Another enabled forward has this protocol and port');
			}
			return true;
		};

		o = s.option(form.Value, 'int_addr', _('LAN host'));
		o.datatype = 'ipaddr';
		o.rmempty = false;
		for (const ip of Object.keys(names).sort())
			o.value(ip, '%s (%s)'.format(ip, names[ip]));

		o = s.option(form.Value, 'int_port', _('LAN port'));
		o.datatype = 'port';
		o.placeholder = _('as external');

		o = s.option(form.Value, 'description', _('Description'));
		o.datatype = 'maxlength(128)';

		s = m.section(form.NamedSection, 'main', 'pcpgw', _('Settings'));
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('upstream', _('Provider'));
		s.tab('protocols', _('Protocols'));
		s.tab('security', _('Security'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable'), _('Start pcpgw at boot'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', widgets.NetworkSelect, 'lan', _('LAN networks'), _('The networks whose hosts may map ports'));
		o.multiple = true;
		o.nocreate = true;
		o.rmempty = false;

		o = s.taboption('general', widgets.NetworkSelect, 'wan', _('WAN (IPv4)'), _('The uplink toward the provider'));
		o.nocreate = true;
		o.rmempty = false;

		o = s.taboption('general', widgets.NetworkSelect, 'wan6', _('WAN (IPv6)'), _('The IPv6 uplink; none: the IPv4 one'));
		o.nocreate = true;

		o = s.taboption('general', form.ListValue, 'mode', _('Mode'));
		o.value('auto', _('Automatic'));
		o.value('local', _('Public WAN address (no provider NAT)'));
		o.value('nat444', _('Behind the provider\'s NAT (NAT444)'));
		o.value('dslite', _('DS-Lite (no NAT on this router)'));
		o.default = 'auto';

		o = s.taboption('upstream', form.ListValue, 'upstream', _('Upstream'),
			_('What opens the ports beyond this router. Automatic: the provider\'s PCP server, else a NAT-PMP gateway, else an ISP box\'s UPnP IGD on the WAN link, else none.'));
		o.value('auto', _('Automatic'));
		o.value('pcp', _('The provider\'s PCP server'));
		o.value('natpmp', _('A NAT-PMP gateway'));
		o.value('upnp', _('The ISP box\'s UPnP IGD'));
		o.value('none', _('None: ports are opened on this router only'));
		o.default = 'auto';

		o = s.taboption('upstream', form.DynamicList, 'pcp_server', _('PCP servers'),
			_('The provider\'s PCP server, ADDR or ADDR:PORT ([ADDR]:PORT for IPv6). None: learned from DHCP (options 158 and 86), then the DS-Lite AFTR, then the default router.'));
		o.placeholder = '100.64.0.1';

		o = s.taboption('upstream', form.Value, 'aftr_name', _('AFTR name'), _('DS-Lite; the DHCPv6 hook sets it'));
		o.datatype = 'hostname';

		o = s.taboption('protocols', form.Flag, 'upnp', _('UPnP IGD'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('protocols', form.Flag, 'igdv1', _('Offer IGD:1'), _('Many games and consoles only speak IGD:1'));
		o.default = '1';
		o.rmempty = false;
		o.depends('upnp', '1');

		o = s.taboption('protocols', form.Flag, 'igdv2', _('Offer IGD:2'), _('With IPv6 firewall control'));
		o.default = '1';
		o.rmempty = false;
		o.depends('upnp', '1');

		o = s.taboption('protocols', form.Value, 'http_port', _('UPnP HTTP port'), _('0: any free port'));
		o.datatype = 'and(uinteger,max(65535))';
		o.placeholder = '5000';
		o.depends('upnp', '1');

		o = s.taboption('protocols', form.Flag, 'natpmp', _('NAT-PMP'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('protocols', form.Flag, 'pcp', _('PCP'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('protocols', form.Flag, 'ipv6_pinholes', _('IPv6 pinholes'), _('Let LAN hosts open inbound IPv6 ports'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('security', form.Flag, 'secure_mode', _('Secure mode'), _('A LAN host may only map ports to itself'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('security', form.Value, 'quota', _('Mappings per host'), _('0: no limit'));
		o.datatype = 'uinteger';
		o.placeholder = '128';

		o = s.taboption('security', form.Value, 'min_lifetime', _('Shortest lease'), _('Seconds'));
		o.datatype = 'uinteger';
		o.placeholder = '120';

		o = s.taboption('security', form.Value, 'max_lifetime', _('Longest lease'), _('Seconds'));
		o.datatype = 'uinteger';
		o.placeholder = '86400';

		o = s.taboption('security', form.Flag, 'ipv6_firewall', _('IPv6 baseline firewall'),
			_('Stateful inbound IPv6 filter (RFC 6092) in pcpgw\'s own table; leave off when the router\'s firewall does it'));

		o = s.taboption('advanced', form.ListValue, 'log_level', _('Log level'));
		o.value('debug', _('Debug'));
		o.value('info', _('Info'));
		o.value('warn', _('Warning'));
		o.value('error', _('Error'));
		o.default = 'info';

		o = s.taboption('advanced', form.Flag, 'syslog', _('Log to syslog'), _('Otherwise to procd\'s log (logread -e pcpgw)'));

		o = s.taboption('advanced', form.Value, 'lease_file', _('Lease file'), _('The mappings in miniupnpd\'s lease format too'));
		o.placeholder = '/var/run/miniupnpd.leases';

		s = m.section(form.GridSection, 'perm_rule', _('Permissions'),
			_('Which LAN hosts may map which ports: the first matching rule allows or denies, as in miniupnpd; a request no rule matches is allowed. IPv6 pinholes follow secure mode instead.'));
		s.anonymous = true;
		s.addremove = true;
		s.sortable = true;
		s.nodescriptions = true;

		o = s.option(form.Value, 'comment', _('Comment'));

		o = s.option(form.Value, 'int_addr', _('LAN hosts'));
		o.placeholder = '0.0.0.0/0';
		o.datatype = 'or(ip4addr,cidr4)';

		o = s.option(form.Value, 'int_ports', _('LAN ports'));
		o.datatype = 'portrange';
		o.placeholder = '0-65535';

		o = s.option(form.Value, 'ext_ports', _('External ports'));
		o.datatype = 'portrange';
		o.placeholder = '0-65535';

		o = s.option(form.ListValue, 'action', _('Action'));
		o.value('allow', _('Allow'));
		o.value('deny', _('Deny'));
		o.default = 'deny';

		return m.render().then(L.bind(function(nodes) {
			this.update(nodes, data);
			poll.add(L.bind(function() {
				return Promise.all([
					L.resolveDefault(callStatus(), {}),
					L.resolveDefault(callList(), {}),
					L.resolveDefault(callLeases(), {})
				]).then(L.bind(this.update, this, nodes));
			}, this), 5);
			return nodes;
		}, this));
	}
});
