// This file is added to package main of cmd/pcpgw by the bench's
// `go build -overlay` (bench/compare_test.go, profilePcpgw); it is never
// part of the daemon in the tree. With PCPGW_BENCH_PPROF set to a path it
// serves net/http/pprof's CPU profile and heap on that unix socket.

package main

import (
	"net"
	"net/http"
	"net/http/pprof"
	"os"
)

func init() {
	path := os.Getenv("PCPGW_BENCH_PPROF")
	if path == "" {
		return
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		os.Stderr.WriteString("pcpgw bench pprof: " + err.Error() + "\n")
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.Handle("/debug/pprof/heap", pprof.Handler("heap"))
	go http.Serve(ln, mux)
}
