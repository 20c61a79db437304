// Command loadgen is certlb's benchmark client: HTTPS over TLS with a client
// certificate, which wrk cannot present.  Standard library only.
//
// Three modes, each printing one JSON object on stdout:
//
//	-mode keepalive  -c conns for -d: keep-alive requests; requests/s, p50, p99
//	-mode handshake  -c conns for -d: a new TLS connection (full handshake, no
//	                 resumption) and one request each; handshakes/s
//	-mode idle       -n connections, each with one request, then held open
//	                 until stdin closes (or -hold passes); prints a first JSON
//	                 line once all are open
//
// Traffic goes only to the address given, which bench/run keeps on 127.0.0.1.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Mode       string  `json:"mode"`
	Conns      int     `json:"conns"`
	DurationS  float64 `json:"duration_s"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	PerSecond  float64 `json:"per_second"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	Open       int     `json:"open,omitempty"`
	FirstError string  `json:"first_error,omitempty"`
}

type errorLog struct {
	count int64
	mu    sync.Mutex
	first string
}

func (e *errorLog) add(err error) {
	atomic.AddInt64(&e.count, 1)
	e.mu.Lock()
	if e.first == "" {
		e.first = err.Error()
	}
	e.mu.Unlock()
}

var (
	addr     = flag.String("addr", "127.0.0.1:8443", "host:port of the TLS server")
	certFile = flag.String("cert", "", "client certificate (PEM)")
	keyFile  = flag.String("key", "", "client key (PEM)")
	mode     = flag.String("mode", "keepalive", "keepalive, handshake or idle")
	conns    = flag.Int("c", 50, "concurrent connections (keepalive, handshake)")
	duration = flag.Duration("d", 10*time.Second, "measured duration")
	warmup   = flag.Duration("warmup", time.Second, "unmeasured load before -d")
	idleN    = flag.Int("n", 1000, "connections to open and hold (idle)")
	hold     = flag.Duration("hold", 120*time.Second, "longest time to hold idle connections")
	path     = flag.String("path", "/", "request path")
	tls12    = flag.Bool("tls12", false, "offer TLS 1.2 only")
)

func main() {
	flag.Parse()
	if *certFile == "" || *keyFile == "" {
		fatal(errors.New("-cert and -key are required: the point is mTLS"))
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// The server's identity is not what is measured; skipping its
		// chain check spares the load generator's core.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
		// No ClientSessionCache: every connection is a full handshake.
	}
	if *tls12 {
		cfg.MaxVersion = tls.VersionTLS12
	}
	var res result
	switch *mode {
	case "keepalive":
		res = load(cfg, true)
	case "handshake":
		res = load(cfg, false)
	case "idle":
		res = idle(cfg)
	default:
		fatal(fmt.Errorf("unknown -mode %q", *mode))
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(2)
}

func dial(cfg *tls.Config) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// request sends one request on c and reads its whole response.
func request(c *tls.Conn, br *bufio.Reader, req []byte) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	return readResponse(br)
}

func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return fmt.Errorf("bad status line %q", line)
	}
	status := string(line[9:12])
	length := int64(-1)
	chunked := false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon < 0 {
			continue
		}
		name := bytes.ToLower(bytes.TrimSpace(h[:colon]))
		value := bytes.TrimSpace(h[colon+1:])
		switch string(name) {
		case "content-length":
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil {
				return fmt.Errorf("bad content-length %q", value)
			}
		case "transfer-encoding":
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		}
	}
	switch {
	case chunked:
		if err := readChunked(br); err != nil {
			return err
		}
	case length >= 0:
		if _, err := br.Discard(int(length)); err != nil {
			return err
		}
	default:
		return errors.New("response without length (would need the close)")
	}
	if status != "200" {
		return fmt.Errorf("status %s", status)
	}
	return nil
}

func readChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex := bytes.TrimSpace(line)
		if i := bytes.IndexByte(hex, ';'); i >= 0 {
			hex = hex[:i]
		}
		size, err := strconv.ParseInt(string(hex), 16, 64)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				t, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(t) <= 2 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(size) + 2); err != nil {
			return err
		}
	}
}

func requestBytes(close bool) []byte {
	s := "GET " + *path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: certlb-bench\r\n"
	if close {
		s += "Connection: close\r\n"
	}
	return []byte(s + "\r\n")
}

// load runs -c workers: keep-alive requests, or one request per new
// connection.  Only what starts after the warm-up and ends before its end
// counts.
func load(cfg *tls.Config, keepAlive bool) result {
	start := time.Now().Add(*warmup)
	end := start.Add(*duration)
	var errs errorLog
	samples := make([][]uint32, *conns)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			if keepAlive {
				samples[w] = keepAliveWorker(cfg, start, end, &errs)
			} else {
				samples[w] = handshakeWorker(cfg, start, end, &errs)
			}
		}(w)
	}
	wg.Wait()
	name := "keepalive"
	if !keepAlive {
		name = "handshake"
	}
	return summarize(name, samples, &errs)
}

func keepAliveWorker(cfg *tls.Config, start, end time.Time, errs *errorLog) []uint32 {
	req := requestBytes(false)
	var out []uint32
	var c *tls.Conn
	var br *bufio.Reader
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		if c == nil {
			var err error
			if c, err = dial(cfg); err != nil {
				errs.add(err)
				if time.Now().After(end) {
					return out
				}
				time.Sleep(10 * time.Millisecond)
				continue
			}
			br = bufio.NewReaderSize(c, 16384)
		}
		t0 := time.Now()
		if !t0.Before(end) {
			return out
		}
		err := request(c, br, req)
		t1 := time.Now()
		if err != nil {
			errs.add(err)
			c.Close()
			c = nil
			continue
		}
		if !t0.Before(start) && !t1.After(end) {
			out = append(out, uint32(t1.Sub(t0)/time.Microsecond))
		}
	}
}

func handshakeWorker(cfg *tls.Config, start, end time.Time, errs *errorLog) []uint32 {
	req := requestBytes(true)
	var out []uint32
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			return out
		}
		c, err := dial(cfg)
		if err == nil {
			err = request(c, bufio.NewReaderSize(c, 4096), req)
			c.Close()
		}
		t1 := time.Now()
		if err != nil {
			errs.add(err)
			time.Sleep(time.Millisecond)
			continue
		}
		if !t0.Before(start) && !t1.After(end) {
			out = append(out, uint32(t1.Sub(t0)/time.Microsecond))
		}
	}
}

func summarize(name string, samples [][]uint32, errs *errorLog) result {
	var all []uint32
	for _, s := range samples {
		all = append(all, s...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res := result{
		Mode:       name,
		Conns:      *conns,
		DurationS:  duration.Seconds(),
		Requests:   int64(len(all)),
		Errors:     atomic.LoadInt64(&errs.count),
		PerSecond:  float64(len(all)) / duration.Seconds(),
		FirstError: errs.first,
	}
	if len(all) > 0 {
		res.P50Ms = float64(all[len(all)*50/100]) / 1000
		res.P99Ms = float64(all[len(all)*99/100]) / 1000
	}
	return res
}

// idle opens -n connections, 50 at a time, makes one request on each, says
// so, and holds them until stdin closes or -hold passes.
func idle(cfg *tls.Config) result {
	var errs errorLog
	req := requestBytes(false)
	held := make([]*tls.Conn, *idleN)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := 0; i < *idleN; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(cfg)
			if err == nil {
				err = request(c, bufio.NewReaderSize(c, 4096), req)
				if err != nil {
					c.Close()
				}
			}
			if err != nil {
				errs.add(err)
				return
			}
			c.SetDeadline(time.Time{})
			held[i] = c
		}(i)
	}
	wg.Wait()
	open := 0
	for _, c := range held {
		if c != nil {
			open++
		}
	}
	res := result{Mode: "idle", Open: open, Conns: *idleN,
		Errors: atomic.LoadInt64(&errs.count), FirstError: errs.first}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	os.Stdout.Sync()
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(*hold):
	}
	for _, c := range held {
		if c != nil {
			c.Close()
		}
	}
	return res
}
