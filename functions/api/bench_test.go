package api_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// latencies collects per-request durations to report a p99 beside ns/op.
type latencies struct{ d []time.Duration }

func (l *latencies) time(f func()) {
	start := time.Now()
	f()
	l.d = append(l.d, time.Since(start))
}

func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	p99 := l.d[len(l.d)*99/100]
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

// benchEnv is newEnv for benchmarks: the same real Redis, over loopback.
func benchEnv(b *testing.B) *env {
	return newEnv(b)
}

func doReq(b *testing.B, e *env, method, path, body string) {
	req, _ := http.NewRequest(method, e.srv.URL+"/api/v1"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

var benchSeq atomic.Int64

func BenchmarkNodeCreate(b *testing.B) {
	e := benchEnv(b)
	var l latencies
	for b.Loop() {
		i := benchSeq.Add(1)
		body := fmt.Sprintf(`{"name":"b%07d","interfaces":[{"name":"eth0","mac":"52:54:%02x:%02x:%02x:%02x","address":"10.1.%d.%d"}],"tags":["bench"]}`,
			i, byte(i>>24), byte(i>>16), byte(i>>8), byte(i), byte(i>>8), byte(i))
		l.time(func() { doReq(b, e, "POST", "/nodes", body) })
	}
	l.report(b)
}

func seedNodes(b *testing.B, e *env, n int) {
	for i := range n {
		doReq(b, e, "POST", "/nodes", fmt.Sprintf(`{"name":"node%05d","interfaces":[{"name":"eth0","mac":"52:55:00:00:%02x:%02x"}]}`, i, i>>8, i&255))
	}
}

func BenchmarkNodeGet(b *testing.B) {
	e := benchEnv(b)
	seedNodes(b, e, 100)
	var l latencies
	i := 0
	for b.Loop() {
		l.time(func() { doReq(b, e, "GET", fmt.Sprintf("/nodes/node%05d", i%100), "") })
		i++
	}
	l.report(b)
}

// BenchmarkNodeList lists a 1000-node cluster 100 nodes a page, filtered
// by a noderange, as the CLI and the nodes page do.
func BenchmarkNodeList(b *testing.B) {
	e := benchEnv(b)
	seedNodes(b, e, 1000)
	var l latencies
	for b.Loop() {
		l.time(func() { doReq(b, e, "GET", "/nodes?range=node[00000-00999]&limit=100", "") })
	}
	l.report(b)
}

// BenchmarkNodeGetParallel is throughput with concurrent clients.
func BenchmarkNodeGetParallel(b *testing.B) {
	e := benchEnv(b)
	seedNodes(b, e, 100)
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			doReq(b, e, "GET", fmt.Sprintf("/nodes/node%05d", i%100), "")
			i++
		}
	})
}
