// Package browser tests the subscriber's page (package webui) in a real
// browser: headless Chromium (Debian's chromium package) driven from Go
// through the Chrome DevTools Protocol on the pipes of
// --remote-debugging-pipe, so that no port is opened and Chromium can run
// inside a lab namespace. Nothing but the standard library is used.
//
//	TestBrowserForward  the page served by httpd on 127.0.0.1 with a fake
//	                    daemon: log in, a refused port shown next to its
//	                    field, add a forward, see it active, delete it; the
//	                    file comes back byte for byte
//	TestBrowserLab      the same against pcpgw in the lab, Chromium on the
//	                    LAN host; the forward carries a connection from net
//	                    to 203.0.113.1:18443 to the LAN listener, and no
//	                    longer once deleted (root; skips until the page is
//	                    mounted on pcpgw's HTTP listener)
//
// Without chromium the tests skip, and fail with PCPGW_E2E=1. Screenshots
// (login, forward form with its message, status, status after delete) are
// written to each test's artifact directory; keep them with
//
//	go test -artifacts -outputdir out/browser ./e2e/browser
package browser
