package lab

import (
	"net"
	"time"
)

// dialUnix connects to a unix socket, retrying until timeout (QEMU creates its
// sockets shortly after it starts).
func dialUnix(path string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.Dial("unix", path)
		if err == nil || time.Now().After(deadline) {
			return conn, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
