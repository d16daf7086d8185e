package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine says where a benchmark ran.
type Machine struct {
	CPU        string    `json:"cpu"`
	CPUs       int       `json:"cpus"`
	Virtual    bool      `json:"virtual"` // the CPU reports a hypervisor
	MemoryMiB  int64     `json:"memory_mib"`
	Kernel     string    `json:"kernel"`
	OS         string    `json:"os"`
	GoVersion  string    `json:"go_version"`
	Date       time.Time `json:"date"`
	GOMAXPROCS int       `json:"gomaxprocs"`
}

// ThisMachine describes the machine it runs on, from /proc where it can.
func ThisMachine() Machine {
	m := Machine{
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC(),
		GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS + "/" + runtime.GOARCH,
	}
	eachLine("/proc/cpuinfo", func(k, v string) {
		switch {
		case k == "model name" && m.CPU == "":
			m.CPU = v
		case k == "flags" && strings.Contains(" "+v+" ", " hypervisor "):
			m.Virtual = true
		}
	})
	eachLine("/proc/meminfo", func(k, v string) {
		if k == "MemTotal" {
			kb, _ := strconv.ParseInt(strings.Fields(v + " 0")[0], 10, 64)
			m.MemoryMiB = kb / 1024
		}
	})
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	eachLine("/etc/os-release", func(k, v string) {
		if k == "PRETTY_NAME" {
			m.OS = strings.Trim(v, `"`) + " " + m.OS
		}
	})
	return m
}

// eachLine calls f with each "key: value" or "key=value" line of path.
func eachLine(path string, f func(k, v string)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			k, v, ok = strings.Cut(line, "=")
		}
		if ok {
			f(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
}
