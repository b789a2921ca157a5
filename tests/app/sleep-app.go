// sleep-app: a FastCGI application in Go (net/http/fcgi, standard library
// only) for the tests and benchmarks of spawn-fcgi's supervisor.
//
// It serves the listening socket on fd 0, as spawn-fcgi passes it.  Every
// request is answered with "slept MS ms in PID\n" after sleeping the
// milliseconds of the query parameter ms (0 without it, at most 60000).
//
// A Go program ends on SIGTERM without finishing anything unless it says
// otherwise; this one stops accepting on SIGTERM, finishes the requests it
// has accepted (until their connections are closed) and exits 0.
package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// pool counts the connections handed out until each one is closed, which
// net/http/fcgi does once the last request on it is done.  Once stopping,
// the last close ends the program.
type pool struct {
	mu       sync.Mutex
	open     int
	stopping bool
}

func (p *pool) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open += n
	if p.stopping && p.open == 0 {
		os.Exit(0)
	}
}

func (p *pool) setStopping() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
}

type trackedListener struct {
	net.Listener
	pool *pool
}

type trackedConn struct {
	net.Conn
	once sync.Once
	pool *pool
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.pool.add(-1) })
	return err
}

func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.pool.add(1)
	return &trackedConn{Conn: c, pool: l.pool}, nil
}

func sleepHandler(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		ms = 0
	}
	if ms > 60000 {
		ms = 60000
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "slept %d ms in %d\n", ms, os.Getpid())
}

func main() {
	// The same socket fcgi.Serve(nil, handler) would use: fd 0.
	//
	// O_NONBLOCK belongs to the open file description, which every child
	// on the socket shares.  Go sets it; os.Stdin.Fd() (called by
	// net.FileListener) clears it again when it was already set, by an
	// earlier child, so that for a moment an accept of another child can
	// block in the kernel, where closing the listener does not wake it.
	// It is set back at once, and a stop waits neither for the listener to
	// close nor for Serve to return.
	ln, err := net.FileListener(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sleep-app: fd 0 is not a listening socket: %v\n", err)
		os.Exit(1)
	}
	syscall.SetNonblock(0, true)
	os.Stdin.Close()
	p := &pool{}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		p.setStopping()
		// Close waits for an accept blocked in the kernel: not here.
		go ln.Close()
		p.add(0)
	}()
	err = fcgi.Serve(trackedListener{Listener: ln, pool: p}, http.HandlerFunc(sleepHandler))
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if !stopping {
		fmt.Fprintf(os.Stderr, "sleep-app: %v\n", err)
		os.Exit(1)
	}
	// Stopping: the last connection closed ends the program.
	select {}
}
