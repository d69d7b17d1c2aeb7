package main

// Profiles of the nodes, with -pprof DIR: the nodes serve Go's profiles on
// a loopback port (debug.pprof_addr, given through its environment
// variable), and the bench saves CPU profiles of the three nodes during
// the ingest levels the summary line reads (16 and 256 devices), and a heap
// profile of the node holding the idle devices once each step has settled.
// Read them with go tool pprof -top FILE.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// profileCPU saves a CPU profile of n over d to path; it only reports a
// failure, as profiles are an aid.
func profileCPU(ctx context.Context, n *node, d time.Duration, path string) {
	secs := max(1, int(d/time.Second))
	fetchProfile(ctx, n, fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs)*time.Second+30*time.Second, path)
}

// profileHeap saves a heap profile of n to path.
func profileHeap(ctx context.Context, n *node, path string) {
	fetchProfile(ctx, n, "heap", 30*time.Second, path)
}

func fetchProfile(ctx context.Context, n *node, what string, timeout time.Duration, path string) {
	if n.pprofAddr == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.pprofAddr+"/debug/pprof/"+what, nil)
	if err != nil {
		return
	}
	resp, err := vigilHTTP{client: http.DefaultClient}.do(req)
	if err != nil {
		progress("pprof: cannot fetch %s of %s: %v", what, n.name, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		progress("pprof: %s of %s: HTTP %d", what, n.name, resp.StatusCode)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		progress("pprof: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		progress("pprof: cannot save %s: %v", path, err)
		return
	}
	progress("pprof: saved %s", path)
}
