package webui

// pageTemplates are the page's HTML: plain server-rendered forms, a
// little inline CSS, no script, no external asset.
const pageTemplates = `
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pcpgw{{with .}} · {{.}}{{end}}</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:.5rem 1rem;color:#222;background:#fafafa}
h1{font-size:1.4rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .4rem;border-bottom:1px solid #ccc}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #e2e2e2;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}dt{color:#555}dd{margin:0;overflow-wrap:anywhere}
.ok,.active{color:#1b5e20}.failing,.bad{color:#b71c1c}.pending{color:#e65100}.disabled{color:#777}
.msg{background:#fff3cd;border:1px solid #e0c36c;padding:.5rem;margin:.5rem 0}
.err{color:#b71c1c;font-size:.9rem;display:block}
form.inline{display:inline;margin:0}
label{display:block;margin:.6rem 0 .1rem;font-weight:600}
input[type=text],input[type=password],input[type=number],select{width:100%;max-width:24rem;font-size:1rem;padding:.35rem;box-sizing:border-box}
button,.button{font-size:1rem;padding:.35rem .8rem;margin:.2rem .1rem;border:1px solid #1565c0;background:#1565c0;color:#fff;border-radius:4px;text-decoration:none;display:inline-block}
button.plain{background:#fff;color:#1565c0}button.danger{background:#fff;color:#b71c1c;border-color:#b71c1c}
svg.chart{width:100%;max-width:40rem;height:auto;background:#fff;border:1px solid #ddd}
@media (max-width:40rem){table.cards tr{display:block;border-bottom:1px solid #ccc;padding:.3rem 0}table.cards tr:first-child{display:none}table.cards td{display:inline-block;border:0;white-space:normal;padding:.15rem .4rem}}
header{display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap}
</style></head><body>{{end}}

{{define "msg"}}{{with .}}<p class="msg" role="alert">{{.}}</p>{{end}}{{end}}

{{define "login"}}{{template "head" "log in"}}
<h1>pcpgw</h1>
{{template "msg" .Msg}}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{.LoginToken}}">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required autofocus>
<p><button type="submit" id="login">Log in</button></p>
</form>
</body></html>{{end}}

{{define "index"}}{{template "head" "status"}}
<header><h1>pcpgw {{.Status.Version}}</h1>
{{if .CanEdit}}<form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button class="plain" type="submit">Log out</button></form>{{end}}</header>
{{template "msg" .Msg}}
{{if .NoPassword}}<p class="msg">Read-only: no password is set. Run <code>pcpgw passwd</code> on the router to edit the forwards here.</p>{{end}}
{{with .HashErr}}<p class="msg">{{.}}</p>{{end}}
<h2>Status</h2>
<dl>
<dt>Mode</dt><dd>{{.Status.Mode}}{{if ne .Status.Mode .Status.ModeConfig}} (configured: {{.Status.ModeConfig}}){{end}}</dd>
<dt>WAN</dt><dd>{{.Status.WAN}} {{.Status.WANAddr}}</dd>
<dt>External address</dt><dd id="external">{{or .Status.External "unknown"}}</dd>
<dt>PCP server</dt><dd>{{or .Status.Upstream.Server "none yet"}}{{with .Status.Upstream.Protocol}} ({{.}}){{end}}, epoch {{.Status.Upstream.Epoch}}</dd>
<dt>Provider</dt><dd>{{if .Status.Upstream.Reachable}}<span class="ok">answering</span>{{else}}<span class="bad">not answering</span>{{end}}, last answer {{.LastAnswer}}{{with .Status.Upstream.LastError}}, last error: <span class="bad">{{.}}</span>{{end}}</dd>
<dt>Requests</dt><dd>{{.Status.Upstream.Sent}} sent, {{.Status.Upstream.Received}} answered, {{.Status.Upstream.Dropped}} dropped</dd>
<dt>Mappings</dt><dd>{{.Status.Mappings}} ({{.Status.Pinholes}} pinholes, {{.Status.Pending}} pending, {{.Status.Failing}} failing)</dd>
</dl>
<h2>Live mappings, last hour</h2>
{{.Chart}}
<h2>Mappings</h2>
<div class="scroll"><table class="cards" id="mappings">
<tr><th>Origin</th><th>Proto</th><th>External</th><th>Internal</th><th>Lease left</th><th>Provider</th><th>Description</th></tr>
{{range .Rows}}<tr><td>{{.Origin}}</td><td>{{.Proto}}</td><td>{{.External}}</td><td>{{.Internal}}</td><td>{{lease .LeaseLeft}}</td><td class="{{.Upstream}}">{{.Upstream}}</td><td>{{.Description}}</td></tr>
{{else}}<tr><td colspan="7">No mapping.</td></tr>{{end}}
</table></div>
<h2>Static forwards</h2>
<div class="scroll"><table class="cards" id="forwards">
<tr><th>Name</th><th>Proto</th><th>External port</th><th>To</th><th>State</th><th>Description</th>{{if .CanEdit}}<th></th>{{end}}</tr>
{{range .Forwards}}<tr><td>{{.Name}}</td><td>{{.Proto}}</td><td>{{.ExtPort}}</td><td>{{.IntAddr}}:{{.IntPort}}</td>
<td class="{{.State}}">{{.State}}{{with .External}} ({{.}}){{end}}</td><td>{{.Description}}</td>
{{if $.CanEdit}}<td><a class="button" href="/forward?id={{.Line}}">Edit</a>
<form class="inline" method="post" action="/forward/toggle"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.Line}}"><button class="plain" type="submit">{{if .Enabled}}Disable{{else}}Enable{{end}}</button></form>
<form class="inline" method="post" action="/forward/delete"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="id" value="{{.Line}}"><button class="danger" type="submit">Delete</button></form></td>{{end}}</tr>
{{else}}<tr><td colspan="7">No static forward.</td></tr>{{end}}
</table></div>
{{if .CanEdit}}<p><a class="button" id="add" href="/forward">Add a forward</a></p>{{end}}
</body></html>{{end}}

{{define "form"}}{{template "head" "forward"}}
<h1>{{if .New}}New static forward{{else}}Edit static forward{{end}}</h1>
{{with index .Errs ""}}<p class="msg" role="alert">{{.}}</p>{{end}}
<form method="post" action="/forward">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="id" value="{{.ID}}">
<label for="name">Name</label>
<input type="text" id="name" name="name" value="{{index .F "name"}}" maxlength="40" required>
{{with index .Errs "name"}}<span class="err" id="name-err">{{.}}</span>{{end}}
<label for="proto">Protocol</label>
<select id="proto" name="proto">{{$p := index .F "proto"}}{{range .Protos}}<option{{if eq . $p}} selected{{end}}>{{.}}</option>{{end}}</select>
{{with index .Errs "proto"}}<span class="err" id="proto-err">{{.}}</span>{{end}}
<label for="ext_port">External port (at the provider)</label>
<input type="number" id="ext_port" name="ext_port" min="1" max="65535" value="{{index .F "ext_port"}}" required>
{{with index .Errs "ext_port"}}<span class="err" id="ext_port-err">{{.}}</span>{{end}}
<label for="int_addr">LAN host address</label>
<input type="text" id="int_addr" name="int_addr" value="{{index .F "int_addr"}}" inputmode="decimal" required>
{{with index .Errs "int_addr"}}<span class="err" id="int_addr-err">{{.}}</span>{{end}}
<label for="int_port">LAN host port (empty: the external port)</label>
<input type="number" id="int_port" name="int_port" min="1" max="65535" value="{{index .F "int_port"}}">
{{with index .Errs "int_port"}}<span class="err" id="int_port-err">{{.}}</span>{{end}}
<label for="description">Description</label>
<input type="text" id="description" name="description" value="{{index .F "description"}}" maxlength="100">
{{with index .Errs "description"}}<span class="err" id="description-err">{{.}}</span>{{end}}
<label><input type="checkbox" id="enabled" name="enabled" value="1"{{if eq (index .F "enabled") "1"}} checked{{end}}> Enabled</label>
<p><button type="submit" id="save">Save</button> <a href="/">Cancel</a></p>
</form>
</body></html>{{end}}
`
