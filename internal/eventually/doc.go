// Package eventually is how the project's tests wait: on a condition, never
// on a clock. A test that needs the code under test to reach some state
// polls for that state with Require (or RequireNoError) instead of sleeping
// for a guessed time, so it passes as soon as the state is reached and, on a
// slow machine, only fails at a generous timeout with a message naming what
// it waited for.
//
// Polling starts fast (1ms) and backs off to at most 50ms, so a condition
// that holds almost at once costs almost nothing and a long wait does not
// busy-loop. A sleep left in a test must be an intended fault window, and
// say so in a comment.
package eventually
