//go:build !race

package receiver

// raceDetector reports a build with -race, whose goroutines and heap
// objects are larger.
const raceDetector = false
