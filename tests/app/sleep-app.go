// sleep-app: a FastCGI application in Go (net/http/fcgi, standard library
// only) for the tests and benchmarks of spawn-fcgi's supervisor.
//
// It serves the listening socket on fd 0, as spawn-fcgi passes it.  Every
// request is answered with "slept MS ms in PID\n" after sleeping the
// milliseconds of the query parameter ms (0 without it, at most 60000).
//
// A Go program ends on SIGTERM without finishing anything unless it says
// otherwise; this one stops accepting on SIGTERM, finishes the requests it
// has accepted (their connections are closed) and exits 0.
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

// trackedListener counts the connections it handed out until each one is
// closed, which net/http/fcgi does once the last request on it is done.
type trackedListener struct {
	net.Listener
	open *sync.WaitGroup
}

type trackedConn struct {
	net.Conn
	once sync.Once
	open *sync.WaitGroup
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.open.Done)
	return err
}

func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &trackedConn{Conn: c, open: l.open}, nil
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
	ln, err := net.FileListener(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sleep-app: fd 0 is not a listening socket: %v\n", err)
		os.Exit(1)
	}
	os.Stdin.Close()
	var open sync.WaitGroup
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		<-stop
		ln.Close()
	}()
	// Serve returns once the listener is closed.
	fcgi.Serve(trackedListener{Listener: ln, open: &open}, http.HandlerFunc(sleepHandler))
	open.Wait()
}
