package webui

import (
	"fmt"
	"html"
	"strings"

	"github.com/pcpgw/pcpgw/internal/control"
)

// The page's HTML is written by hand with html.EscapeString rather than
// with html/template: text/template's reflection keeps every exported
// method of the binary alive, 2.3 MB on MIPS, more than the rest of the
// page many times over. Every value from outside goes through esc.

// esc escapes s for HTML text and quoted attribute values.
func esc(s string) string { return html.EscapeString(s) }

// css is the page's whole style: readable on a phone, tables become cards
// below 40rem.
const css = `body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:.5rem 1rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .4rem;border-bottom:1px solid #ccc}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #e2e2e2;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{color:#555}dd{margin:0;overflow-wrap:anywhere}
.ok,.active{color:#1b5e20}.failing,.bad{color:#b71c1c}.pending{color:#e65100}.disabled{color:#777}
.msg{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem;margin:.5rem 0}
.err{color:#b71c1c;font-size:.9rem;display:block}
.why{display:block;font-size:.85rem;white-space:normal;max-width:24rem}
form.inline{display:inline;margin:0}
label{display:block;margin:.6rem 0 .1rem;font-weight:600}
input[type=text],input[type=password],input[type=number],select{width:100%;max-width:24rem;font-size:1rem;padding:.35rem;box-sizing:border-box}
button,.button{font-size:1rem;padding:.35rem .8rem;margin:.2rem .1rem;border:1px solid #1565c0;background:#1565c0;color:#fff;border-radius:4px;text-decoration:none;display:inline-block}
button.plain{background:#fff;color:#1565c0}button.danger{background:#fff;color:#b71c1c;border-color:#b71c1c}
svg.chart{width:100%;max-width:40rem;height:auto;background:#fff;border:1px solid #ddd}
@media (max-width:40rem){table.cards tr{display:block;border-bottom:1px solid #ccc;padding:.3rem 0}table.cards tr:first-child{display:none}table.cards td{display:inline-block;border:0;white-space:normal;padding:.15rem .4rem}}
header{display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap}`

// page builds one HTML document.
type page struct{ strings.Builder }

func (p *page) f(format string, args ...any) { fmt.Fprintf(&p.Builder, format, args...) }

func (p *page) head(title string) { p.headRefresh(title, 0) }

// headRefresh is head with the page reloading itself (as a GET of /) every
// refresh seconds when refresh > 0: while a mapping waits for the provider
// or for its next retry.
func (p *page) headRefresh(title string, refresh int) {
	meta := ""
	if refresh > 0 {
		meta = fmt.Sprintf("\n<meta http-equiv=\"refresh\" content=\"%d; url=/\">", refresh)
	}
	p.f(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">%s
<title>pcpgw · %s</title>
<style>
%s
</style></head><body>
`, meta, esc(title), css)
}

func (p *page) msg(m string) {
	if m != "" {
		p.f("<p class=\"msg\" role=\"alert\">%s</p>\n", esc(m))
	}
}

func (p *page) end() { p.WriteString("</body></html>\n") }

// hidden writes the hidden inputs of a form.
func (p *page) hidden(kv ...string) {
	for i := 0; i+1 < len(kv); i += 2 {
		p.f(`<input type="hidden" name="%s" value="%s">`, esc(kv[i]), esc(kv[i+1]))
	}
}

func renderLogin(d indexData) string {
	var p page
	p.head("log in")
	p.WriteString("<h1>pcpgw</h1>\n")
	p.msg(d.Msg)
	p.WriteString(`<form method="post" action="/login">`)
	p.hidden("csrf", d.LoginToken)
	p.WriteString(`
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required autofocus>
<p><button type="submit" id="login">Log in</button></p>
</form>
`)
	p.end()
	return p.String()
}

func renderIndex(d indexData) string {
	var p page
	st := d.Status
	refresh := d.RetryRefresh
	if st.Pending > 0 {
		refresh = 3 // show the provider's answer without the user reloading
	}
	p.headRefresh("status", refresh)
	p.f("<header><h1>pcpgw %s</h1>\n", esc(st.Version))
	if d.CanEdit {
		p.WriteString(`<form class="inline" method="post" action="/logout">`)
		p.hidden("csrf", d.CSRF)
		p.WriteString(`<button class="plain" type="submit">Log out</button></form>`)
	}
	p.WriteString("</header>\n")
	p.msg(d.Msg)
	if d.NoPassword {
		p.WriteString("<p class=\"msg\">Read-only: no password is set. Run <code>pcpgw passwd</code> on the router to edit the forwards here.</p>\n")
	}
	if d.HashErr != "" {
		p.f("<p class=\"msg\">%s</p>\n", esc(d.HashErr))
	}
	mode := esc(st.Mode)
	if st.ModeConfig != "" && st.ModeConfig != st.Mode {
		mode += " (configured: " + esc(st.ModeConfig) + ")"
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	up := st.Upstream
	server := esc(or(up.Server, "none yet"))
	if up.Protocol != "" {
		server += " (" + esc(up.Protocol) + ")"
	}
	health := `<span class="bad">not answering</span>`
	if up.Reachable {
		health = `<span class="ok">answering</span>`
	}
	health += ", last answer " + esc(d.LastAnswer)
	if up.LastError != "" {
		health += `, last error: <span class="bad">` + esc(up.LastError) + `</span>`
	}
	p.WriteString("<h2>Status</h2>\n<dl>\n")
	p.f("<dt>Mode</dt><dd>%s</dd>\n", mode)
	p.f("<dt>WAN</dt><dd>%s %s</dd>\n", esc(st.WAN), esc(st.WANAddr))
	p.f("<dt>External address</dt><dd id=\"external\">%s</dd>\n", esc(or(st.External, "unknown")))
	if ps := st.PortSet; ps != nil {
		// A+P (MAP-E, MAP-T, lw4o6): nothing upstream to ask, only the
		// ports the provider forwards to this router.
		p.f("<dt>Port set</dt><dd id=\"portset\">%s</dd>\n", esc(ps.Text))
	} else {
		p.f("<dt>Upstream</dt><dd id=\"upstream\">%s</dd>\n", upstreamText(up))
		switch up.Kind {
		case "pcp", "natpmp":
			p.f("<dt>PCP server</dt><dd>%s, epoch %d</dd>\n", server, up.Epoch)
		}
		switch up.Kind {
		case "pcp", "natpmp", "upnp":
			p.f("<dt>Provider</dt><dd>%s</dd>\n", health)
			p.f("<dt>Requests</dt><dd>%d sent, %d answered, %d dropped</dd>\n", up.Sent, up.Received, up.Dropped)
		}
		if up.Advice != "" {
			p.f("<dt>What to do</dt><dd id=\"advice\" class=\"bad\">%s</dd>\n", esc(up.Advice))
		}
	}
	p.f("<dt>Mappings</dt><dd>%d (%d pinholes, %d pending, %d failing)</dd>\n</dl>\n", st.Mappings, st.Pinholes, st.Pending, st.Failing)
	p.f("<h2>Live mappings, last hour</h2>\n%s\n", d.Chart)

	p.WriteString("<h2>Mappings</h2>\n<div class=\"scroll\"><table class=\"cards\" id=\"mappings\">\n")
	p.WriteString("<tr><th>Origin</th><th>Proto</th><th>External</th><th>Internal</th><th>Lease left</th><th>Provider</th><th>Description</th></tr>\n")
	for _, r := range d.Rows {
		up := esc(r.Upstream)
		if r.Error != "" {
			up += `<span class="why">` + esc(r.Error) + `</span>`
		}
		p.f("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td class=\"%s\">%s</td><td>%s</td></tr>\n",
			esc(r.Origin), esc(r.Proto), esc(r.External), esc(r.Internal), leaseText(r.LeaseLeft), esc(r.Upstream), up, esc(r.Description))
	}
	if len(d.Rows) == 0 {
		p.WriteString("<tr><td colspan=\"7\">No mapping.</td></tr>\n")
	}
	p.WriteString("</table></div>\n")

	p.WriteString("<h2>Static forwards</h2>\n<div class=\"scroll\"><table class=\"cards\" id=\"forwards\">\n")
	p.WriteString("<tr><th>Name</th><th>Proto</th><th>External port</th><th>To</th><th>State</th><th>Description</th>")
	if d.CanEdit {
		p.WriteString("<th></th>")
	}
	p.WriteString("</tr>\n")
	for _, f := range d.Forwards {
		state := esc(f.State)
		if f.External != "" {
			state += " (" + esc(f.External) + ")"
		}
		if f.Why != "" {
			state += `<span class="why">` + esc(f.Why) + `</span>`
		}
		p.f("<tr><td>%s</td><td>%s</td><td>%d</td><td>%s:%d</td>\n<td class=\"%s\">%s</td><td>%s</td>",
			esc(f.Name), f.Proto, f.ExtPort, esc(f.IntAddr.String()), f.IntPort, esc(f.State), state, esc(f.Description))
		if d.CanEdit {
			id := itoa(f.Line)
			toggle := "Enable"
			if f.Enabled {
				toggle = "Disable"
			}
			p.f(`<td><a class="button" href="/forward?id=%s">Edit</a>`+"\n", id)
			p.WriteString(`<form class="inline" method="post" action="/forward/toggle">`)
			p.hidden("csrf", d.CSRF, "id", id)
			p.f(`<button class="plain" type="submit">%s</button></form>`+"\n", toggle)
			p.WriteString(`<form class="inline" method="post" action="/forward/delete">`)
			p.hidden("csrf", d.CSRF, "id", id)
			p.WriteString(`<button class="danger" type="submit">Delete</button></form></td>`)
		}
		p.WriteString("</tr>\n")
	}
	if len(d.Forwards) == 0 {
		p.WriteString("<tr><td colspan=\"7\">No static forward.</td></tr>\n")
	}
	p.WriteString("</table></div>\n")
	if d.CanEdit {
		p.WriteString("<p><a class=\"button\" id=\"add\" href=\"/forward\">Add a forward</a></p>\n")
	}
	p.end()
	return p.String()
}

// formField writes a label, an input and the field's message.
func (p *page) formField(fd formData, name, label, typ, extra string) {
	p.f("<label for=\"%s\">%s</label>\n", name, esc(label))
	p.f("<input type=\"%s\" id=\"%s\" name=\"%s\" value=\"%s\"%s>\n", typ, name, name, esc(fd.F[name]), extra)
	p.fieldErr(fd, name)
}

func (p *page) fieldErr(fd formData, name string) {
	if m := fd.Errs[name]; m != "" {
		p.f("<span class=\"err\" id=\"%s-err\">%s</span>\n", name, esc(m))
	}
}

func renderForm(fd formData) string {
	var p page
	p.head("forward")
	if fd.New {
		p.WriteString("<h1>New static forward</h1>\n")
	} else {
		p.WriteString("<h1>Edit static forward</h1>\n")
	}
	p.msg(fd.Errs[""])
	p.WriteString(`<form method="post" action="/forward">`)
	p.hidden("csrf", fd.CSRF, "id", itoa(fd.ID))
	p.WriteString("\n")
	p.formField(fd, "name", "Name", "text", ` maxlength="40" required`)
	p.WriteString("<label for=\"proto\">Protocol</label>\n<select id=\"proto\" name=\"proto\">")
	for _, pr := range fd.Protos {
		sel := ""
		if pr == fd.F["proto"] {
			sel = " selected"
		}
		p.f("<option%s>%s</option>", sel, pr)
	}
	p.WriteString("</select>\n")
	p.fieldErr(fd, "proto")
	p.formField(fd, "ext_port", "External port (at the provider)", "number", ` min="1" max="65535" required`)
	p.formField(fd, "int_addr", "LAN host address", "text", ` inputmode="decimal" required`)
	p.formField(fd, "int_port", "LAN host port (empty: the external port)", "number", ` min="1" max="65535"`)
	p.formField(fd, "description", "Description", "text", ` maxlength="100"`)
	checked := ""
	if fd.F["enabled"] == "1" {
		checked = " checked"
	}
	p.f("<label><input type=\"checkbox\" id=\"enabled\" name=\"enabled\" value=\"1\"%s> Enabled</label>\n", checked)
	p.WriteString("<p><button type=\"submit\" id=\"save\">Save</button> <a href=\"/\">Cancel</a></p>\n</form>\n")
	p.end()
	return p.String()
}

// upstreamText says what opens ports beyond the router: its kind, where
// it is, and for an ISP box's IGD the device's name and model.
func upstreamText(up control.Upstream) string {
	var what string
	switch up.Kind {
	case "pcp":
		what = "the provider's PCP server"
	case "natpmp":
		what = "a NAT-PMP gateway"
	case "upnp":
		what = "the ISP box's UPnP IGD"
		if d := up.Device; d != nil {
			name := strings.TrimSpace(d.FriendlyName + " " + strings.TrimSpace(d.Manufacturer+" "+d.Model))
			if name != "" {
				what += " (" + esc(name) + ")"
			}
		}
	case "none":
		what = `<span class="bad">nothing upstream forwards ports</span>`
	case "local":
		what = "none needed (public WAN address)"
	case "detecting":
		what = "looking for the upstream NAT"
	default:
		what = esc(up.Kind)
	}
	if up.Address != "" {
		what += " at " + esc(up.Address)
	}
	if up.External != "" && up.Kind == "upnp" {
		what += ", which reports " + esc(up.External)
	}
	if up.KindConfig != "" && up.KindConfig != "auto" {
		what += " (configured)"
	}
	return what
}
