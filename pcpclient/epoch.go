package pcpclient

import "time"

// epochState is the per-server memory of RFC 6887 §8.5: the last server
// epoch time seen and the client time it was received.
type epochState struct {
	seen       bool
	prevServer uint32
	prevClient time.Time
}

// check validates the server's epoch time curr received at client time now,
// records it, and reports whether it is valid. The first response is always
// valid. Otherwise the epoch going back by more than one second, or the
// client and server deltas differing by more than the §8.5 tolerance
// (client_delta+2 < server_delta - server_delta/16, or
// server_delta+2 < client_delta - client_delta/16, integer seconds), is
// invalid: the server lost state.
func (e *epochState) check(curr uint32, now time.Time) bool {
	return e.checkStrict(curr, now, false)
}

// checkStrict is check; with announced (the answer to a request the
// client sent because the server announced it may have lost state,
// §14.1.3), an epoch that fell behind the client's clock by a whole
// second is invalid too: the server told us it restarted, and this
// answer to the client's own request confirms it even when the §8.5
// tolerance (2 s) would not (a server restarted within seconds of its
// start).
func (e *epochState) checkStrict(curr uint32, now time.Time, announced bool) bool {
	valid := true
	if e.seen {
		if uint64(curr)+1 < uint64(e.prevServer) {
			valid = false
		} else {
			var serverDelta uint64
			if curr > e.prevServer {
				serverDelta = uint64(curr - e.prevServer)
			}
			var clientDelta uint64
			if d := now.Sub(e.prevClient); d > 0 { // the client clock must not go back; treat that as 0
				clientDelta = uint64(d / time.Second)
			}
			if clientDelta+2 < serverDelta-serverDelta/16 || serverDelta+2 < clientDelta-clientDelta/16 {
				valid = false
			}
			if announced && uint64(curr)+1 < uint64(e.prevServer)+clientDelta {
				valid = false
			}
		}
	}
	e.seen = true
	e.prevServer = curr
	e.prevClient = now
	return valid
}
