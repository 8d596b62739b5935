// Package bench holds `make bench` (issue 9): pcpgw beside miniupnpd 2.3.9
// in the same namespace lab, measured by the same clients in the same run.
//
// It has no code of its own outside its tests. TestCompare runs only with
// PCPGW_BENCH=1 and as root (the Makefile's bench target sets it); under
// plain `go test ./...` it skips at once. It measures, in one lab
// (internal/lab, LAB.md's addresses):
//
//   - IGD AddPortMapping and DeletePortMapping latency (p50, p99) over one
//     keep-alive HTTP client in the lan namespace, as live mappings grow
//     to 10, 1,000, 3,000 and 10,000, for miniupnpd as the CPE daemon and
//     for pcpgw --mode local (the same work: a local DNAT), each size
//     within a time budget; then pcpgw --mode nat444 through miniupnpd as
//     the provider's CGN;
//   - NAT-PMP map requests per second and p99 from many LAN source
//     addresses at once (each asks for 4 ports: new mappings, then
//     renewals, which need no kernel write when asked again within 20 s),
//     and the same load with every request for a new port (a new mapping
//     and a kernel write each);
//   - resident memory idle and at the largest size, CPU time per 1,000
//     requests, binary sizes (from `make cross`);
//   - the time pcpgw takes to re-create 1,000 mappings at the CGN after
//     the CGN lost its state;
//
// and writes one markdown table (metric | pcpgw | miniupnpd | ratio), with
// the Go micro-benchmarks of every package summarized in it, plus CPU and
// heap profiles of pcpgw under load, under PCPGW_BENCH_OUT.
package bench
