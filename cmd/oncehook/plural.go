package main

import "fmt"

// count is n and the noun, singular for 1: "1 row", "2 rows". plural is
// the noun's plural form; "" adds an s.
func count[N ~int | ~int64](n N, noun, plural string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	if plural == "" {
		plural = noun + "s"
	}
	return fmt.Sprintf("%d %s", n, plural)
}
