// loadgen: an HTTP load generator for AgentWatch's benchmarks.
//
// Two modes:
//   - open loop (-rate R): requests are scheduled at fixed intervals and each latency is
//     measured from its *scheduled* send time, so a slow server cannot hide its queueing
//     delay by slowing the generator down (no coordinated omission);
//   - closed loop (-connections N, no -rate): N workers send back to back, for the maximum
//     sustained throughput.
//
// It is written in Go so that, on a 2-core machine, the generator costs the system under
// test as little CPU as possible. It prints one JSON object with the figures.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	latency time.Duration
	ttft    time.Duration
	status  int
	err     bool
}

type summary struct {
	Mode        string             `json:"mode"`
	TargetRate  float64            `json:"target_rate"`
	Connections int                `json:"connections"`
	DurationS   float64            `json:"duration_s"`
	Sent        int                `json:"sent"`
	WarmupSent  int                `json:"warmup_sent"`
	OK          int                `json:"ok"`
	Errors      int                `json:"errors"`
	Statuses    map[string]int     `json:"statuses"`
	AchievedRPS float64            `json:"achieved_rps"`
	LatencyMs   map[string]float64 `json:"latency_ms"`
	TTFTMs      map[string]float64 `json:"ttft_ms,omitempty"`
}

func percentiles(values []time.Duration) map[string]float64 {
	out := map[string]float64{}
	if len(values) == 0 {
		return out
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	at := func(q float64) float64 {
		idx := int(q*float64(len(values))+0.5) - 1
		if idx < 0 {
			idx = 0
		}
		if idx >= len(values) {
			idx = len(values) - 1
		}
		return float64(values[idx].Microseconds()) / 1000.0
	}
	out["p50"] = at(0.50)
	out["p90"] = at(0.90)
	out["p99"] = at(0.99)
	out["p999"] = at(0.999)
	out["max"] = float64(values[len(values)-1].Microseconds()) / 1000.0
	return out
}

func main() {
	url := flag.String("url", "", "target URL")
	method := flag.String("method", "POST", "HTTP method")
	bodyFile := flag.String("body", "", "file with the request body")
	rate := flag.Float64("rate", 0, "open loop: requests per second (0 = closed loop)")
	connections := flag.Int("connections", 50, "closed loop: concurrent workers; open loop: max in flight")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	warmup := flag.Duration("warmup", 1*time.Second, "unmeasured warm-up before sending")
	timeout := flag.Duration("timeout", 10*time.Second, "per-request timeout")
	stream := flag.Bool("stream", false, "measure time to first byte of the body (streams)")
	var headers headerList
	flag.Var(&headers, "H", "header 'Name: value' (repeatable)")
	vary := flag.String("vary-header", "", "header 'Name: fmt' whose %d takes i mod -vary-count (e.g. session ids)")
	varyCount := flag.Int("vary-count", 1000, "distinct values of -vary-header")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "error: -url is required")
		os.Exit(2)
	}
	var body []byte
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: reading body: %v\n", err)
			os.Exit(2)
		}
		body = b
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport, Timeout: *timeout}
	parsed := make([][2]string, 0, len(headers))
	for _, h := range headers {
		parts := strings.SplitN(h, ":", 2)
		if len(parts) == 2 {
			parsed = append(parsed, [2]string{strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])})
		}
	}
	var varyName, varyFmt string
	if parts := strings.SplitN(*vary, ":", 2); len(parts) == 2 {
		varyName, varyFmt = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
	}
	var counter uint64
	var counterMu sync.Mutex
	do := func(scheduled time.Time) result {
		req, err := http.NewRequest(*method, *url, bytes.NewReader(body))
		if err != nil {
			return result{err: true}
		}
		for _, h := range parsed {
			req.Header.Set(h[0], h[1])
		}
		if varyName != "" {
			counterMu.Lock()
			n := counter
			counter++
			counterMu.Unlock()
			req.Header.Set(varyName, fmt.Sprintf(varyFmt, int(n%uint64(*varyCount))))
		}
		resp, err := client.Do(req)
		if err != nil {
			return result{latency: time.Since(scheduled), err: true}
		}
		var ttft time.Duration
		if *stream {
			r := bufio.NewReader(resp.Body)
			if _, err := r.ReadByte(); err == nil {
				ttft = time.Since(scheduled)
			}
			_, _ = io.Copy(io.Discard, r)
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
		return result{latency: time.Since(scheduled), ttft: ttft, status: resp.StatusCode}
	}

	// Warm-up: open the connections the run will use.
	warmEnd := time.Now().Add(*warmup)
	warmupSent := 0
	for time.Now().Before(warmEnd) {
		var wg sync.WaitGroup
		for i := 0; i < *connections && i < 64; i++ {
			wg.Add(1)
			warmupSent++
			go func() { defer wg.Done(); do(time.Now()) }()
		}
		wg.Wait()
	}

	results := make(chan result, 1<<16)
	var all []result
	collected := make(chan struct{})
	go func() {
		for r := range results {
			all = append(all, r)
		}
		close(collected)
	}()

	start := time.Now()
	end := start.Add(*duration)
	var wg sync.WaitGroup
	mode := "closed"
	if *rate > 0 {
		mode = "open"
		interval := time.Duration(float64(time.Second) / *rate)
		inflight := make(chan struct{}, *connections*100)
		for i := 0; ; i++ {
			scheduled := start.Add(time.Duration(i) * interval)
			if !scheduled.Before(end) {
				break
			}
			if d := time.Until(scheduled); d > 0 {
				time.Sleep(d)
			}
			select {
			case inflight <- struct{}{}:
			default:
				// Too many in flight: count it as an error rather than block the schedule.
				results <- result{latency: time.Since(scheduled), err: true}
				continue
			}
			wg.Add(1)
			go func(s time.Time) {
				defer wg.Done()
				results <- do(s)
				<-inflight
			}(scheduled)
		}
	} else {
		for w := 0; w < *connections; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					results <- do(time.Now())
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(results)
	<-collected

	s := summary{Mode: mode, TargetRate: *rate, Connections: *connections, DurationS: elapsed.Seconds(),
		Statuses: map[string]int{}, WarmupSent: warmupSent}
	var lat, ttft []time.Duration
	for _, r := range all {
		s.Sent++
		if r.err {
			s.Errors++
			s.Statuses["error"]++
			continue
		}
		s.Statuses[fmt.Sprint(r.status)]++
		if r.status >= 200 && r.status < 300 {
			s.OK++
			lat = append(lat, r.latency)
			if r.ttft > 0 {
				ttft = append(ttft, r.ttft)
			}
		}
	}
	s.AchievedRPS = float64(s.OK) / elapsed.Seconds()
	s.LatencyMs = percentiles(lat)
	if *stream {
		s.TTFTMs = percentiles(ttft)
	}
	enc := json.NewEncoder(os.Stdout)
	_ = enc.Encode(s)
}
