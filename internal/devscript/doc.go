// Package devscript holds the tests of scripts/dev.sh, the `make run`
// script: they run it as a new user would, with real Postgres, Redis and
// receiver processes on free ports and a data directory of their own, and
// use what it prints.
package devscript
