// A small stand-in for LuCI's client runtime (luci.js, form.js, rpc.js,
// uci.js...), enough to render luci-app-pcpgw's view and status include
// in a browser without a router: for the README's screenshot
// (openwrt/test/luci/screenshot.sh). Sample answers of the ubus calls and
// the UCI configuration come from data.js. Not LuCI's code, nor its look:
// the structure of the page (sections, tables, fields) is what it shows.
'use strict';

const T = (s) => document.createTextNode(String(s));

// E(tag, [attrs], [children]) as LuCI's: a string child is HTML, an
// array's strings are text.
function E(tag, attrs, children) {
	if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof Node) {
		children = attrs;
		attrs = null;
	}
	const n = document.createElement(tag);
	for (const k in attrs || {}) {
		const v = attrs[k];
		if (v == null) continue;
		if (typeof v === 'function') n.addEventListener(k, v);
		else n.setAttribute(k, v);
	}
	dom.content(n, children);
	return n;
}

const dom = {
	content(n, c) {
		while (n.firstChild) n.removeChild(n.firstChild);
		dom.append(n, c);
	},
	append(n, c) {
		if (c == null) return;
		if (Array.isArray(c)) {
			for (const x of c)
				if (x instanceof Node) n.appendChild(x);
				else if (x != null) n.appendChild(T(x));
		}
		else if (c instanceof Node) n.appendChild(c);
		else n.innerHTML = String(c);
	},
	parent(n, sel) { return n.closest(sel); }
};

function pad(n) { return String(n).padStart(2, '0'); }

String.prototype.format = function() {
	let i = 0;
	const args = arguments;
	return this.replace(/%([sdht%])/g, function(m, c) {
		if (c === '%') return '%';
		const v = args[i++];
		switch (c) {
		case 'd': return String(Math.floor(+v));
		case 'h': return String(v).replace(/[&<>"']/g, (ch) => '&#' + ch.charCodeAt(0) + ';');
		case 't': {
			let s = Math.floor(+v), out = '';
			const d = Math.floor(s / 86400); s %= 86400;
			const h = Math.floor(s / 3600); s %= 3600;
			const mi = Math.floor(s / 60); s %= 60;
			if (d) out += d + 'd ';
			if (d || h) out += h + 'h ';
			if (d || h || mi) out += mi + 'm ';
			return out + s + 's';
		}
		}
		return String(v);
	});
};

window._ = (s) => s;
window.E = E;

const L = {
	bind(fn, self, ...a) { return fn.bind(self, ...a); },
	toArray(x) { return x == null ? [] : Array.isArray(x) ? x : [x]; },
	resolveDefault(p, d) { return Promise.resolve(p).catch(() => d); }
};
window.L = L;

function cbi_update_table(table, rows, placeholder) {
	for (const tr of Array.from(table.querySelectorAll('tr:not(.table-titles)'))) tr.remove();
	if (!rows.length) {
		table.appendChild(E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td', 'colspan': '9' }, [ placeholder ]) ]));
		return;
	}
	for (const r of rows)
		table.appendChild(E('tr', { 'class': 'tr' }, r.map((c) => {
			const td = E('td', { 'class': 'td' });
			dom.append(td, c);
			return td;
		})));
}
window.cbi_update_table = cbi_update_table;

const rpc = {
	declare(d) {
		return function() {
			const r = window.SAMPLE.ubus[d.object + '.' + d.method];
			return Promise.resolve(typeof r === 'function' ? r(...arguments) : r);
		};
	}
};

const uci = {
	load() { return Promise.resolve(); },
	sections(conf, type) { return window.SAMPLE.uci.filter((s) => !type || s['.type'] === type); },
	get(conf, sid, opt) {
		const s = window.SAMPLE.uci.find((x) => x['.name'] === sid);
		return s ? (opt ? s[opt] : s['.type']) : null;
	}
};

const poll = { add() {} };
const ui = { addNotification() {} };
const view = { extend(o) { return o; } };
const baseclass = { extend(o) { return o; } };

// form: sections and options are recorded, and rendered as LuCI lays
// them out: a named section's options in tabs, a grid section as a table
// with a row per UCI section.
class Option {
	constructor(section, name, title, description) {
		Object.assign(this, { section, name, title, description, choices: [] });
	}
	value(k, v) { this.choices.push([ k, v ?? k ]); }
	depends() {}
	input(sid) {
		let v = uci.get('pcpgw', sid, this.name);
		if (v == null) v = this.default;
		if (Array.isArray(v)) v = v.join(', ');
		if (this.kind === 'Flag')
			return E('input', { 'type': 'checkbox', 'checked': (v ?? '0') === '1' ? '' : null });
		if (this.kind === 'ListValue') {
			const c = this.choices.find((x) => x[0] === v);
			return E('select', [ E('option', [ c ? c[1] : (v ?? '') ]) ]);
		}
		return E('input', { 'type': 'text', 'value': v ?? '', 'placeholder': this.placeholder ?? '' });
	}
}
const optionKind = (kind) => class extends Option { get kind() { return kind; } };

class Section {
	constructor(map, kind, type, name, title, description) {
		Object.assign(this, { map, kind, type, name, title, description, options: [], tabs: [] });
	}
	option(cls, name, title, desc) { const o = new cls(this, name, title, desc); this.options.push(o); return o; }
	taboption(tab, cls, name, title, desc) { const o = this.option(cls, name, title, desc); o.tab = tab; return o; }
	tab(name, title) { this.tabs.push([ name, title ]); }
	formvalue() { return null; }
	renderNamed() {
		const sid = this.name;
		const tabs = this.tabs.map(([ n, t ], i) => E('li', { 'class': i ? '' : 'active' }, [ t ]));
		const first = this.tabs.length ? this.tabs[0][0] : null;
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', [ this.title ]),
			E('ul', { 'class': 'tabs' }, tabs),
			E('div', this.options.filter((o) => !first || o.tab === first).map((o) => E('div', { 'class': 'cbi-value' }, [
				E('label', { 'class': 'cbi-value-title' }, [ o.title ]),
				E('div', { 'class': 'cbi-value-field' }, [ o.input(sid), o.description ? E('div', { 'class': 'cbi-value-description' }, [ o.description ]) : '' ])
			])))
		]);
	}
	renderGrid() {
		const rows = uci.sections('pcpgw', this.type);
		return E('div', { 'class': 'cbi-section' }, [
			E('h3', [ this.title ]),
			this.description ? E('div', { 'class': 'cbi-section-descr' }, [ this.description ]) : '',
			E('table', { 'class': 'table' }, [
				E('tr', { 'class': 'tr table-titles' }, this.options.map((o) => E('th', { 'class': 'th' }, [ o.title ])).concat([ E('th', { 'class': 'th' }, []) ])),
				...rows.map((r) => E('tr', { 'class': 'tr' }, this.options.map((o) => {
					let v = r[o.name] ?? o.default ?? '';
					if (o.kind === 'Flag') v = (v === '1') ? '✔' : '✘';
					else if (o.kind === 'ListValue') v = (o.choices.find((c) => c[0] === v) || [ v, v ])[1];
					return E('td', { 'class': 'td' }, [ String(v || o.placeholder || '') ]);
				}).concat([ E('td', { 'class': 'td' }, [ E('button', { 'class': 'btn' }, [ 'Edit' ]), ' ', E('button', { 'class': 'btn cbi-button-remove' }, [ 'Delete' ]) ]) ])))
			]),
			E('button', { 'class': 'btn cbi-button-add' }, [ 'Add' ])
		]);
	}
	render() {
		return this.kind === 'NamedSection' ? this.renderNamed() : this.renderGrid();
	}
}

const form = {
	Map: class {
		constructor(config, title, description) { Object.assign(this, { config, title, description, sections: [] }); }
		section(cls, type, name, title, description) {
			let s;
			if (cls === form.NamedSection) s = new Section(this, 'NamedSection', name, type, title, description);
			else s = new Section(this, cls === form.GridSection ? 'GridSection' : 'TypedSection', type, null, name, title);
			this.sections.push(s);
			return s;
		}
		render() {
			return Promise.resolve(E('div', { 'class': 'cbi-map' }, [
				E('h2', [ this.title ]),
				E('div', { 'class': 'cbi-map-descr' }, [ this.description ]),
				...this.sections.map((s) => s.render())
			]));
		}
	},
	NamedSection: 'NamedSection', TypedSection: 'TypedSection', GridSection: 'GridSection',
	Flag: optionKind('Flag'), Value: optionKind('Value'), ListValue: optionKind('ListValue'),
	DynamicList: optionKind('DynamicList'), DummyValue: optionKind('DummyValue')
};
const widgets = { NetworkSelect: optionKind('NetworkSelect') };

// load runs a LuCI view file as LuCI does: its body as a function of the
// modules it requires.
async function loadView(url) {
	const src = await (await fetch(url)).text();
	const names = [], mods = [];
	const all = { baseclass, dom, form, poll, rpc, uci, ui, view };
	for (const m of src.matchAll(/^'require ([^']+)';$/gm)) {
		const [ mod, as ] = m[1].split(' as ');
		names.push(as || mod);
		mods.push(mod === 'tools.widgets' ? widgets : all[mod]);
	}
	return new Function(...names, src)(...mods);
}

async function renderInto(id, url) {
	const v = await loadView(url);
	const data = await v.load();
	const node = await v.render(data);
	if (v.title) document.getElementById(id).appendChild(E('h3', [ v.title ]));
	document.getElementById(id).appendChild(node);
}
window.renderInto = renderInto;
