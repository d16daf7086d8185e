package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// readMemory reads a process's VmRSS and VmHWM from /proc (Linux).
func readMemory(pid int) (ProcessMemory, error) {
	m := ProcessMemory{PID: pid}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v) // "123456 kB"
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSSKB = n
		case "VmHWM":
			m.PeakKB = n
		}
	}
	return m, sc.Err()
}
