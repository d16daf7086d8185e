package receiver

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"time"

	"github.com/oncehook/oncehook/internal/eventually"
)

func TestReadBodySizes(t *testing.T) {
	const max = 300 << 10
	budget := &bodyBudget{limit: 1 << 30}
	for _, size := range []int{0, 1, 4095, 4096, 4097, 16 << 10, 16<<10 + 1, 65 << 10, max} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(rand.IntN(256))
		}
		for _, declared := range []int{size, -1} {
			for _, r := range []io.Reader{bytes.NewReader(body), iotest.HalfReader(bytes.NewReader(body)), iotest.DataErrReader(bytes.NewReader(body))} {
				bb, charged, err := readBody(r, declared, max, budget)
				if err != nil {
					t.Fatalf("size %d, declared %d: %v", size, declared, err)
				}
				var got []byte
				if bb != nil {
					got = bb.b
					if charged != cap(bb.b) {
						t.Fatalf("size %d: charged %d for a buffer of %d", size, charged, cap(bb.b))
					}
				}
				if !bytes.Equal(got, body) {
					t.Fatalf("size %d, declared %d: read %d bytes, not the body", size, declared, len(got))
				}
				if size > firstBodyBuf && charged > 2*size {
					t.Fatalf("size %d: charged %d, more than twice the body", size, charged)
				}
				budget.give(charged)
				putBodyBuf(bb)
			}
		}
	}
	if u := budget.used.Load(); u != 0 {
		t.Fatalf("%d bytes still charged after every body was given back", u)
	}
}

func TestReadBodyLimits(t *testing.T) {
	const max = 64 << 10
	budget := &bodyBudget{limit: 1 << 30}
	read := func(body []byte, declared int) error {
		bb, charged, err := readBody(bytes.NewReader(body), declared, max, budget)
		budget.give(charged)
		putBodyBuf(bb)
		return err
	}
	if err := read(nil, max+1); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("declared over max: %v, want errBodyTooLarge", err)
	}
	if err := read(make([]byte, max+1), -1); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("chunked over max: %v, want errBodyTooLarge", err)
	}
	if err := read(make([]byte, max), -1); err != nil {
		t.Errorf("chunked at max: %v", err)
	}
	if err := read(make([]byte, 50), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("shorter than declared: %v, want io.ErrUnexpectedEOF", err)
	}
	small := &bodyBudget{limit: 20 << 10}
	bb, charged, err := readBody(bytes.NewReader(make([]byte, 30<<10)), 30<<10, max, small)
	if !errors.Is(err, errBodyBudget) {
		t.Errorf("30 KB with a 20 KB budget: %v, want errBodyBudget", err)
	}
	small.give(charged)
	putBodyBuf(bb)
	if u := budget.used.Load() + small.used.Load(); u != 0 {
		t.Fatalf("%d bytes still charged", u)
	}
}

// TestReadBodyChargesWhatArrived: a slow body declaring 1 MB holds budget
// for what it has sent, not for what it declares.
func TestReadBodyChargesWhatArrived(t *testing.T) {
	budget := &bodyBudget{limit: 1 << 30}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		bb, charged, err := readBody(pr, 1<<20, 1<<20, budget)
		budget.give(charged)
		putBodyBuf(bb)
		done <- err
	}()
	if _, err := pw.Write(make([]byte, 20<<10)); err != nil {
		t.Fatal(err)
	}
	eventually.Within(5*time.Second, func() bool { return budget.used.Load() >= 32<<10 })
	if u := budget.used.Load(); u != 32<<10 {
		t.Errorf("20 KB of a declared 1 MB arrived: %d bytes charged, want 32 KB", u)
	}
	pw.CloseWithError(errors.New("client gone"))
	if err := <-done; err == nil {
		t.Error("a body cut short read without error")
	}
	if u := budget.used.Load(); u != 0 {
		t.Errorf("%d bytes still charged after the read ended", u)
	}
}

// TestLargestBodyFitsTheSmallestBudget: with MaxBodyBytesInFlight at its
// least, twice MaxBodyBytes, a body of exactly MaxBodyBytes is read (its
// buffer doubles, and the old one is held while it is copied); with the
// budget at MaxBodyBytes alone it never could be.
func TestLargestBodyFitsTheSmallestBudget(t *testing.T) {
	for _, max := range []int{1 << 20, 300<<10 + 7, 64 << 10} {
		body := bytes.Repeat([]byte("x"), max)
		for _, declared := range []int{max, -1} {
			budget := &bodyBudget{limit: 2 * int64(max)}
			bb, charged, err := readBody(bytes.NewReader(body), declared, max, budget)
			if err != nil || len(bb.b) != max {
				t.Fatalf("max %d, declared %d, budget 2×max: %v", max, declared, err)
			}
			budget.give(charged)
			if budget.used.Load() != 0 {
				t.Fatalf("max %d: %d bytes left charged", max, budget.used.Load())
			}
		}
	}
	tight := &bodyBudget{limit: 1 << 20}
	if _, _, err := readBody(bytes.NewReader(bytes.Repeat([]byte("x"), 1<<20)), 1<<20, 1<<20, tight); !errors.Is(err, errBodyBudget) {
		t.Fatalf("a 1 MiB body with a 1 MiB budget: %v, want errBodyBudget (why the budget is at least twice MaxBodyBytes)", err)
	}
}
