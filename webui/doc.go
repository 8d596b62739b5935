// Package webui is the subscriber's page (issue 11): pcpgw's status and
// its static port forwards, served on the LAN HTTP listener the IGD uses
// (every path the IGD does not own), as plain server-rendered HTML with a
// little inline CSS: no script, no framework, no external asset.
//
// # Pages
//
//	GET  /                 status (mode, provider's address, PCP server and
//	                       epoch, upstream health, every mapping, a chart of
//	                       live mappings over the last hour) and the forwards
//	GET  /forward[?id=N]   the form of a new forward or of the one whose
//	                       section starts on line N of the file
//	POST /forward          save it (validated as config.Validate does;
//	                       messages next to the fields)
//	POST /forward/toggle   enable or disable forward id
//	POST /forward/delete   delete forward id
//	POST /login, /logout
//
// Saving edits the UCI file in place with config/ucied (comments and the
// other sections are kept), writes it atomically (temporary file, fsync,
// rename) and has the daemon reload it (Daemon.Reload, as SIGHUP).
//
// # Security
//
//   - The password's hash is option password_hash of the pcpgw section
//     (argon2id, PHC string format, written by `pcpgw passwd` with
//     HashPassword). Without it the page shows the status read-only and
//     nothing can be changed.
//   - Sessions: a random 128-bit ID in an HttpOnly, SameSite=Strict cookie;
//     the server keeps at most Config.MaxSessions, each ending after
//     Config.SessionIdle unused and 12 hours at most.
//   - CSRF: every form carries a per-session token checked on POST (the
//     login form a double-submit cookie token); a POST whose Origin, or
//     without one its Referer, names another site is refused.
//   - Login attempts: 5 at once then one per 30 s per source address, 20
//     at once then one per 5 s over all addresses; one argon2id check at
//     a time.
//   - The Host header must be an IP literal of pcpgw's LAN side with the
//     port of the connection (DNS rebinding), as the IGD requires.
//   - Responses carry a Content-Security-Policy without scripts, no-store
//     caching and frame denial.
package webui
